"""Languages: every user-facing string is marked and the catalogue is current.

The locale is chosen in the documented order; numbers, dates and API errors follow it.

The scanners below read the sources the way a translator's tool would: template text
outside ``{% trans %}``/``_()``, Python messages (flash, abort, errors, form labels) not
wrapped in a gettext call, and JavaScript string literals that read as sentences. Each
scanner is first shown a planted unmarked string, so a scanner that finds nothing
because it is broken fails too.
"""

from __future__ import annotations

import ast
import html.parser
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from jinja2 import Environment

from geomap import create_app
from geomap.i18n import _DOMAIN, LOCALES, PoCatalogues, text_direction
from tests.conftest import app_config, sessions_on

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
TRANSLATIONS = ROOT / "geomap" / "translations"
POT = TRANSLATIONS / "messages.pot"
SHIPPED = [code for code in LOCALES if code != "en"]

# Words that are names, not English: the brand, data formats, our sources.
NOT_ENGLISH = {"geomap", "CSV", "JSON", "ICD-10", "GeoNames", "Natural Earth", "Leaflet",
               "OpenAPI", "HPO"}
# Attributes people read (or hear).
READ_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt", "label", "aria-description"}
LETTERS = re.compile(r"[^\W\d_]{2,}")


# --- templates -------------------------------------------------------------------------

def _literal_text(source: str, env: Environment) -> str:
    """Return the template's literal text outside translation, Jinja output as a mark."""
    out, depth = [], 0
    tokens = [t for t in env.lex(source) if t[1] != "whitespace"]
    for i, (_line, kind, value) in enumerate(tokens):
        if kind == "name" and i > 0 and tokens[i - 1][1] == "block_begin":
            if value == "trans":
                depth += 1
            elif value == "endtrans":
                depth -= 1
        if kind == "data" and depth == 0:
            out.append(value)
        elif kind == "variable_begin" and depth == 0:
            out.append("\x00")  # a value from the code: translated there, or data
    return "".join(out)


class _TextScanner(html.parser.HTMLParser):
    """Collect text nodes and read attributes that hold words (outside script/style/code)."""

    SKIP = {"script", "style", "code"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        attributes = dict(attrs)
        for name, value in attrs:
            if name in READ_ATTRIBUTES and value:
                self._check(value)
        if tag == "meta" and attributes.get("property", "").startswith("og:") and \
                attributes.get("property") != "og:image":
            self._check(attributes.get("content") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self._check(data)

    def _check(self, text: str) -> None:
        words = text.replace("\x00", " ")
        if all("-" in token for token in words.split()):
            return  # class names (a block filling class="…"), not words
        for name in NOT_ENGLISH:
            words = words.replace(name, " ")
        if LETTERS.search(words):
            self.found.append(" ".join(text.replace("\x00", "{…}").split()))


def unmarked_template_text(source: str, env: Environment, html: bool = True) -> list[str]:
    """Return the words of ``source`` a person would see that no translation covers."""
    literal = _literal_text(source, env)
    if not html:
        words = literal.replace("\x00", " ")
        for name in NOT_ENGLISH:
            words = words.replace(name, " ")
        return [line.strip() for line in words.splitlines() if LETTERS.search(line)]
    scanner = _TextScanner()
    scanner.feed(literal)
    scanner.close()
    return scanner.found


@pytest.fixture(scope="module")
def jinja() -> Environment:
    return Environment(extensions=["jinja2.ext.i18n"], autoescape=True)  # lexing only


def test_the_template_scanner_finds_planted_unmarked_text(jinja: Environment) -> None:
    planted = ('<p>{% trans %}Marked sentence.{% endtrans %} Unmarked sentence.</p>'
               '<input placeholder="Type here"><a title="{{ _(\'Fine\') }}">{{ name }}</a>'
               '<meta property="og:title" content="A world map">'
               '<script>var notText = "ok";</script><code>geomap publish</code>')
    assert unmarked_template_text(planted, jinja) == [
        "Unmarked sentence.", "Type here", "A world map"]
    assert unmarked_template_text("{% trans %}Hello,{% endtrans %}\n\nBye now\ngeomap\n",
                                  jinja, html=False) == ["Bye now"]


def test_every_template_string_is_marked_for_translation(jinja: Environment) -> None:
    unmarked = {}
    for path in sorted(TEMPLATES.rglob("*")):
        if path.suffix not in (".html", ".txt"):
            continue
        found = unmarked_template_text(path.read_text(), jinja, html=path.suffix == ".html")
        if found:
            unmarked[str(path.relative_to(ROOT))] = found
    assert unmarked == {}


# --- Python ----------------------------------------------------------------------------

_EXCEPTIONS = re.compile(r"(Error|BadRequest|NotFound|Forbidden|Conflict|Unprocessable"
                         r"|Gone|Unavailable|TooManyRequests)$")
_GETTEXT = {"_", "gettext", "_l", "lazy_gettext", "ngettext", "N_", "plural_forms"}
# Modules whose messages are for operators (CLI, start-up, importers, internal invariants
# such as the soulmates cache limits), not site visitors.
OPERATOR_MODULES = ("cli.py", "config.py", "embedded_pg.py", "wsgi_server.py", "database.py",
                    "session.py", "privacy.py", "ingest/importer.py", "ingest/members_bulk.py",
                    "ingest/demo.py", "geo/", "catalogue/load.py", "catalogue/sources.py",
                    "regions/", "symptoms/demo.py", "symptoms/vocabulary.py",
                    "symptoms/ingest.py", "symptoms/candidates.py", "symptoms/scorer.py",
                    "symptoms/scorer_link.py", "publish/step.py", "publish/regions.py",
                    "publish/schedule.py",
                    "mail/__init__.py", "web/openapi.py", "http_cache.py")


def _name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def _message_arguments(call: ast.Call) -> list[ast.expr]:
    name = _name(call)
    if name == "flash":
        return call.args[:1]
    if name == "abort":
        return call.args[1:2] + [k.value for k in call.keywords if k.arg == "description"]
    if _EXCEPTIONS.search(name) or name == "ValidationError":
        return call.args[:1] + [k.value for k in call.keywords
                                if k.arg in ("description", "message")]
    if name.endswith("Field") and name[:1].isupper():  # WTForms: the label
        return call.args[:1]
    if name in ("DataRequired", "InputRequired", "EqualTo", "Length"):
        return [k.value for k in call.keywords if k.arg == "message"]
    return []


def _reads_as_words(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(LETTERS.search(node.value)) and " " in node.value.strip()
    if isinstance(node, ast.JoinedStr):
        return any(_reads_as_words(v) for v in node.values)
    if isinstance(node, ast.BinOp):
        return _reads_as_words(node.left) or _reads_as_words(node.right)
    if isinstance(node, ast.IfExp):
        return _reads_as_words(node.body) or _reads_as_words(node.orelse)
    return False


def unmarked_python_messages(source: str) -> list[int]:
    """Return the lines of messages people read (flash, abort, errors, labels) not marked."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            for argument in _message_arguments(node):
                if _reads_as_words(argument):
                    lines.append(argument.lineno)
    return sorted(lines)


def test_the_python_scanner_finds_planted_unmarked_messages() -> None:
    planted = '\n'.join([
        'flash("Saved, thank you.")',
        'flash(_("Saved, thank you."))',
        'abort(404, description=f"There is no condition {slug!r}.")',
        'raise MemberInputError(_("Pick a city."))',
        'raise MemberInputError("Pick a city " + name)',
        'email = EmailField("Your email", validators=[DataRequired(message="Say it.")])',
        'name = StringField(_l("Name"))',
        'flash(message)',
    ])
    assert unmarked_python_messages(planted) == [1, 3, 5, 6, 6]  # label and message


def test_every_python_message_is_marked_for_translation() -> None:
    unmarked = {}
    for path in sorted((ROOT / "geomap").rglob("*.py")):
        relative = str(path.relative_to(ROOT / "geomap"))
        if relative.startswith(OPERATOR_MODULES):
            continue
        found = unmarked_python_messages(path.read_text())
        if found:
            unmarked[relative] = found
    assert unmarked == {}


# --- JavaScript ------------------------------------------------------------------------

JS = ROOT / "static" / "geomap"
_JS_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"|\'((?:[^\'\\\n]|\\.)*)\'')
# Literals that are words but no English sentence: events, keys, GeoJSON types, ARIA.
_JS_WORDS = re.compile(r"^[\w.:#\[\]=*\-/ ,()>|+&;]*$")


def sentence_literals(source: str) -> list[str]:
    """Return JavaScript string literals that read as text for people (two or more words)."""
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    source = re.sub(r"(?m)^\s*//.*$|\s//\s.*$", "", source)
    found = []
    for match in _JS_STRING.finditer(source):
        text = match.group(1) if match.group(1) is not None else match.group(2)
        glued = bool(re.search(r"[A-Za-z]{2}", text)) and text != text.strip() \
            and "=" not in text and not all("-" in t for t in text.split())
        # (" members": text glued to a value; "geomap-count ": class names)
        text = re.sub(r"<[^>]+>|&\w+;", " ", text)  # markup around names (attribution)
        for name in NOT_ENGLISH:
            text = text.replace(name, " ")
        words = [w for w in re.findall(r"[A-Za-z]+", text)]
        css_like = all("-" in w or "." in w or "#" in w for w in text.split()) or \
            text.strip().startswith(("#", ".", "[")) or "://" in text or "=" in text
        capitalised = bool(re.match(r"^\s*[A-Z][a-z]+[ :,.!?]", text))
        if text.strip() == "use strict":
            continue
        if glued or (len(words) >= 2 and " " in text.strip() and not css_like
                and any(len(w) > 1 and w.islower() for w in words)) or capitalised:
            found.append(text.strip())
    return found


def test_the_javascript_scanner_finds_planted_sentences() -> None:
    planted = ('el.textContent = "No place found.";\n'
               'label.textContent = count + " members";\n'
               'el.className = "geomap-count geomap-cell";\n'
               'if (event.key === "ArrowDown") {}\n'
               'el.textContent = geomap.t("places.none");\n'
               'document.querySelectorAll("form.condition-search");\n'
               'x.setAttribute("aria-label", "Copied: ok");\n')
    assert sentence_literals(planted) == ["No place found.", "members", "Copied: ok"]


def test_javascript_shows_only_strings_from_the_server_catalogue() -> None:
    found = {path.name: sentence_literals(path.read_text())
             for path in sorted(JS.glob("*.js"))}
    assert {name: texts for name, texts in found.items() if texts} == {}


def test_every_key_the_scripts_ask_for_is_in_the_catalogue(app) -> None:
    from geomap.i18n.js import js_messages

    asked = set()
    for path in JS.glob("*.js"):
        asked |= set(re.findall(r"geomap\.tn?\(\s*\"([\w.]+)\"", path.read_text()))
    with app.test_request_context("/?lang=ar"):
        catalogue = js_messages()
    assert asked, "the scripts ask for no translated string"
    assert asked - set(catalogue) == set()
    # Arabic counts have six forms (zero, one, two, few, many, other): each is given.
    assert set(catalogue["map.members"]) == {"zero", "one", "two", "few", "many", "other"}



PLURAL_SAMPLES = (*range(0, 230), 1000, 1001, 10**6, 2 * 10**6, 10**9)


@pytest.mark.parametrize("locale", SHIPPED)
def test_the_scripts_pick_the_plural_form_the_catalogue_gives(app, locale: str) -> None:
    # The browser chooses a form by CLDR category (Intl.PluralRules); each category's
    # form must be the one ngettext gives for its numbers, the millions ("many" in
    # French, Spanish, Italian, Portuguese) and Arabic's zero, two, few and many included.
    from babel import Locale
    from flask_babel import get_translations

    from geomap.i18n.js import plural_forms

    with POT.open("rb") as f:
        plurals = [m.id for m in read_po(f) if isinstance(m.id, tuple)]
    rule = Locale.parse(locale).plural_form
    wrong = []
    with app.test_request_context(f"/?lang={locale}"):
        ngettext = get_translations().ungettext
        for singular, plural in plurals:
            forms = plural_forms(singular, plural)
            assert set(forms) == rule.tags | {"other"}, singular
            wrong += [(singular, n) for n in PLURAL_SAMPLES
                      if forms[rule(n)] != ngettext(singular, plural, n)]
    assert wrong == []


@pytest.mark.parametrize("locale", SHIPPED)
def test_plural_forms_say_the_count_once(locale: str) -> None:
    # Arabic says one and two with the noun ("منطقة واحدة", "منطقتين"): a form that also
    # gives the number in brackets says it twice.
    with (TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f, locale=locale)
    twice = [form for m in catalog if isinstance(m.id, tuple) for form in m.string
             if re.search(r"\(%\((count|n)\)s\)", form)]
    assert twice == []


# --- the catalogue ---------------------------------------------------------------------

def _msgids(path: Path) -> set:
    with path.open("rb") as f:
        return {m.id for m in read_po(f) if m.id}


def test_the_message_catalogue_holds_every_marked_string(tmp_path: Path) -> None:
    """Pybabel extract, run now, finds exactly the strings of the committed messages.pot."""
    fresh = tmp_path / "messages.pot"
    subprocess.run(
        [str(Path(sys.executable).with_name("pybabel")), "-q", "extract", "-F", "babel.cfg",
         "-k", "_l", "-k", "N_", "-k", "plural_forms:1,2", "--no-location", "-o", str(fresh),
         "."],
        cwd=ROOT, check=True)
    extracted, committed = _msgids(fresh), _msgids(POT)
    assert len(extracted) > 500
    assert extracted - committed == set(), "run scripts/i18n.sh extract and update"
    assert committed - extracted == set(), "run scripts/i18n.sh extract and update"


@pytest.mark.parametrize("locale", SHIPPED)
def test_each_language_catalogue_matches_the_template(locale: str) -> None:
    po = TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po"
    assert po.exists(), f"scripts/i18n.sh init {locale}"
    assert _msgids(po) == _msgids(POT), "run scripts/i18n.sh update"


def _untranslated(locale: str) -> list[str]:
    with (TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f, locale=locale)
    return [m.id if isinstance(m.id, str) else m.id[0] for m in catalog
            if m.id and (not m.string or (isinstance(m.string, tuple) and not all(m.string))
                         or m.fuzzy)]


@pytest.mark.parametrize("locale", SHIPPED)
def test_each_language_translates_every_message(locale: str) -> None:
    assert _untranslated(locale) == []


# --- locale choice, formats, API errors --------------------------------------------------

@pytest.fixture
def german_catalogue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A German catalogue with a few real translations, used instead of the shipped one."""
    folder = tmp_path / "de" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "messages.po").write_text(
        'msgid ""\nmsgstr ""\n"Language: de\\n"\n"Content-Type: text/plain; charset=utf-8\\n"\n'
        '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"\n\n'
        'msgid "Sign in"\nmsgstr "Anmelden"\n\n'
        'msgid "There is no condition %(slug)r. See the list of conditions."\n'
        'msgstr "Die Erkrankung %(slug)r gibt es nicht. Siehe die Liste der Erkrankungen."\n\n'
        'msgid "Not found"\nmsgstr "Nicht gefunden"\n', encoding="utf-8")
    domain = PoCatalogues(tmp_path)
    monkeypatch.setattr(_DOMAIN, "directory", domain.directory)
    monkeypatch.setattr(_DOMAIN, "compiled", {})
    return tmp_path


def _lang(page: str) -> tuple[str, str]:
    match = re.search(r'<html lang="([\w-]+)" dir="(\w+)"', page)
    assert match, "no <html lang dir>"
    return match.group(1), match.group(2)


def test_locale_follows_accept_language_then_cookie_then_lang_then_the_setting(
        client, app) -> None:
    assert _lang(client.get("/login").get_data(as_text=True)) == ("en", "ltr")
    german = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}
    assert _lang(client.get("/login", headers=german).get_data(as_text=True)) == ("de", "ltr")
    # An unknown language falls back to the next one the browser asks for, else English.
    assert _lang(client.get("/login", headers={"Accept-Language": "xx, fr;q=0.8"})
                 .get_data(as_text=True))[0] == "fr"
    assert _lang(client.get("/login", headers={"Accept-Language": "xx"})
                 .get_data(as_text=True))[0] == "en"
    # ?lang= beats Accept-Language.
    assert _lang(client.get("/login?lang=ar", headers=german).get_data(as_text=True)) == (
        "ar", "rtl")
    # The switch keeps the choice in a cookie, which beats Accept-Language...
    switched = client.get("/language?lang=it&next=/login")
    assert switched.status_code == 303 and switched.headers["Location"].endswith("/login")
    assert _lang(client.get("/login", headers=german).get_data(as_text=True))[0] == "it"
    # ... but not an explicit ?lang=.
    assert _lang(client.get("/login?lang=pt").get_data(as_text=True))[0] == "pt"
    # The switch only leads back to this site.
    assert client.get("/language?lang=es&next=//evil.example/").headers[
        "Location"].endswith("/")


@pytest.fixture
def transactional_app(connection, tmp_path: Path):
    """The app over a rolled-back transaction, CSRF off (these tests are about behaviour)."""
    return create_app(app_config(tmp_path, GEOMAP_SESSIONS=sessions_on(connection),
                                 WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=False))


def test_a_signed_in_accounts_setting_beats_lang_and_the_browser(transactional_app,
                                                                 session) -> None:
    from sqlalchemy import text

    from tests.members_helpers import add_member

    account_id, _member = add_member(session, "lingua-franca")
    session.execute(text("UPDATE accounts SET locale = 'fr' WHERE id = :id"),
                    {"id": account_id})
    session.commit()
    client = transactional_app.test_client()
    signed_in = client.post("/login", data={"email": "lingua-franca@example.org",
                                            "password": "correct horse battery"})
    assert signed_in.status_code == 302
    # setting > ?lang > cookie > Accept-Language
    client.get("/language?lang=es")
    assert _lang(client.get("/account?lang=de", headers={"Accept-Language": "pt"})
                 .get_data(as_text=True))[0] == "fr"
    # The account page changes the setting (and the time zone); it holds from then on.
    saved = client.post("/account/language", data={"locale": "it",
                                                   "time_zone": "Europe/Rome"})
    assert saved.status_code == 302
    stored = session.execute(text("SELECT locale, time_zone FROM accounts WHERE id = :id"),
                             {"id": account_id}).one()
    assert tuple(stored) == ("it", "Europe/Rome")
    page = client.get("/account?lang=de").get_data(as_text=True)
    assert _lang(page)[0] == "it"
    assert '<option selected value="Europe/Rome">' in page
    # The switch, signed in, saves the setting too.
    client.post("/language", data={"lang": "ar", "next": "/account"})
    assert session.execute(text("SELECT locale FROM accounts WHERE id = :id"),
                           {"id": account_id}).scalar_one() == "ar"
    # Signed out, the cookie and the browser's language count again.
    client.post("/logout")
    assert _lang(client.get("/login", headers={"Accept-Language": "pt"})
                 .get_data(as_text=True))[0] == "ar"  # the switch's cookie
    client.delete_cookie("geomap_lang")
    assert _lang(client.get("/login", headers={"Accept-Language": "pt"})
                 .get_data(as_text=True))[0] == "pt"


def test_numbers_dates_and_country_names_follow_the_locale(app) -> None:
    from geomap.i18n.formats import country_name, day, number, when

    moment = datetime(2026, 3, 5, 14, 30, tzinfo=UTC)
    expected = {
        "en": ("12,345", "Germany"),
        "de": ("12.345", "Deutschland"),
        "fr": ("12\u202f345", "Allemagne"),
        "es": ("12.345", "Alemania"),
        "it": ("12.345", "Germania"),
        "pt": ("12.345", "Alemanha"),
        "ar": ("12,345", "ألمانيا"),
    }
    for locale, (grouped, germany) in expected.items():
        with app.test_request_context(f"/?lang={locale}"):
            assert number(12345) == grouped, locale
            assert country_name("DE") == germany, locale
            assert country_name("Germany") == germany, locale
    with app.test_request_context("/?lang=de"):
        assert day(moment) == "05.03.2026"
        assert when(moment) == "05.03.2026, 14:30:00 UTC"
    with app.test_request_context("/?lang=fr", headers={"Cookie": "geomap_tz=Europe/Paris"}):
        # In the viewer's time zone (15:30 in Paris), the zone named.
        assert when(moment).startswith("5 mars 2026, 15:30:00")
    with app.test_request_context("/?lang=en", headers={"Cookie": "geomap_tz=Not/AZone"}):
        assert when(moment) == "Mar 5, 2026, 2:30:00\u202fPM UTC"


def test_api_error_message_is_translated_and_its_code_is_not(client,
                                                             german_catalogue: Path) -> None:
    english = client.get("/api/v1/conditions/no-such-thing/cells?zoom=2&bbox=-180,-85,180,85")
    german = client.get("/api/v1/conditions/no-such-thing/cells?zoom=2&bbox=-180,-85,180,85",
                        headers={"Accept-Language": "de"})
    assert english.status_code == german.status_code == 404
    en, de = english.get_json()["error"], german.get_json()["error"]
    assert en["code"] == de["code"] == "not_found"
    assert en["message"] == "There is no condition 'no-such-thing'. See the list of conditions."
    assert de["message"] == ("Die Erkrankung 'no-such-thing' gibt es nicht. "
                             "Siehe die Liste der Erkrankungen.")
    assert de["title"] == "Nicht gefunden" and en["title"] == "Not found"
    assert german.headers["Content-Language"] == "de"
    assert "Accept-Language" in german.headers["Vary"]


def test_pages_speak_the_catalogue_of_their_language(client, german_catalogue: Path) -> None:
    page = client.get("/login?lang=de").get_data(as_text=True)
    assert "<h1>Anmelden</h1>" in page
    assert "<h1>Sign in</h1>" in client.get("/login?lang=en").get_data(as_text=True)


def test_arabic_is_right_to_left_and_the_others_are_not() -> None:
    assert [code for code in LOCALES if text_direction(code) == "rtl"] == ["ar"]


def test_every_shipped_locale_is_known_to_cldr_with_native_name(tmp_path: Path) -> None:
    app = create_app(app_config(tmp_path, GEOMAP_DATABASE_URL="postgresql://unused/x"))
    from geomap.i18n import language_names

    with app.test_request_context("/"):
        names = dict(language_names())
    assert names == {"en": "English", "es": "Español", "fr": "Français", "de": "Deutsch",
                     "it": "Italiano", "pt": "Português", "ar": "العربية"}


def test_the_stored_native_names_are_what_cldr_says() -> None:
    from geomap.i18n import NATIVE_NAMES, native_name

    assert set(NATIVE_NAMES) == set(LOCALES)
    assert {code: native_name(code) for code in LOCALES} == NATIVE_NAMES


def test_condition_names_follow_the_locale_where_the_catalogue_has_them(
        transactional_app, session) -> None:
    from sqlalchemy import text

    english = session.execute(text("SELECT name FROM conditions WHERE slug = 'all'")
                              ).scalar_one()
    session.execute(text(
        "INSERT INTO catalogue_names (entry_id, locale, name, kind) "
        "SELECT id, 'es', 'Leucemia linfoblástica aguda', 'official' "
        "FROM catalogue_entries WHERE slug = 'all' ON CONFLICT DO NOTHING"))
    session.commit()
    client = transactional_app.test_client()
    spanish = client.get("/conditions/all/map?lang=es").get_data(as_text=True)
    assert "<h1><bdi>Leucemia linfoblástica aguda</bdi> <span" in spanish
    assert f"<h1><bdi>{english}</bdi> <span" in client.get("/conditions/all/map?lang=fr").get_data(
        as_text=True)  # no French name: the English one
    assert "Leucemia linfoblástica aguda" in client.get("/?lang=es").get_data(as_text=True)
    embed = client.get("/embed/conditions/all/map?lang=es").get_data(as_text=True)
    assert "Leucemia linfoblástica aguda" in embed and 'lang="es"' in embed
    oembed = client.get("/oembed?url=http://localhost/embed/conditions/all/map%3Flang%3Des"
                        ).get_json()
    assert oembed["title"] == "Mapa mundial de Leucemia linfoblástica aguda"  # es catalogue
    assert "lang=es" in oembed["html"]


def test_the_embed_editor_offers_a_language_the_snippet_carries(client) -> None:
    page = client.get("/embed?condition=all&embed_lang=de").get_data(as_text=True)
    assert '<option value="de" lang="de" selected>Deutsch</option>' in page
    snippet = re.search(r'<textarea id="embed-snippet"[^>]*>(.*?)</textarea>', page, re.S)
    assert "lang=de" in snippet.group(1)
    assert client.get("/embed/conditions/all/map?lang=xx").status_code == 400
    german = client.get("/embed/conditions/all/map?lang=de")
    assert '<html lang="de" dir="ltr">' in german.get_data(as_text=True)
    assert "Cookie" not in german.headers.get("Vary", "")
    assert "Set-Cookie" not in german.headers
    # The editor is a site page: the language switch's cookie counts there (it stayed
    # English, a newcomer's report); the framed map still ignores it.
    client.set_cookie("geomap_lang", "fr")  # what the switch sets
    editor = client.get("/embed?condition=all").get_data(as_text=True)
    assert _lang(editor)[0] == "fr"
    framed = client.get("/embed/conditions/all/map").get_data(as_text=True)
    assert '<html lang="en" dir="ltr">' in framed


def test_region_names_follow_the_locale_where_iso_3166_2_has_them(app) -> None:
    from geomap.i18n.formats import region_name

    for locale, bavaria in (("en", "Bayern"), ("fr", "Bavière"), ("it", "Baviera"),
                            ("ar", "Bayern")):
        with app.test_request_context(f"/?lang={locale}"):
            assert region_name("Bayern") == bavaria, locale
    with app.test_request_context("/?lang=de"):
        assert region_name("California") == "Kalifornien"
        assert region_name("Somewhere Unknown") == "Somewhere Unknown"


# --- names inside sentences: isolated for bidirectional text -------------------------------

SCRIPTED = "ALL (B) <script>alert(1)</script>"
ESCAPED = "ALL (B) &lt;script&gt;alert(1)&lt;/script&gt;"


def test_a_condition_name_in_arabic_sentences_is_isolated_and_escaped(
        transactional_app, session) -> None:
    from sqlalchemy import text

    # A Latin-script name (with markup in it) as the condition's Arabic name.
    session.execute(text(
        "INSERT INTO catalogue_names (entry_id, locale, name, kind) "
        "SELECT id, 'ar', :name, 'official' FROM catalogue_entries WHERE slug = 'all'"),
        {"name": SCRIPTED})
    session.commit()
    page = transactional_app.test_client().get("/conditions/all/map?lang=ar").get_data(
        as_text=True)
    assert f'<h1><bdi>{ESCAPED}</bdi> <span class="icd">' in page
    join = re.search(r'id="join-cta"[^>]*>(.*?)</a>', page).group(1)
    assert f"<bdi>{ESCAPED}</bdi>" in join
    caption = re.search(r"<caption>(.*?)</caption>", page, re.S).group(1)
    assert f"<bdi>{ESCAPED}</bdi>" in caption
    assert "<script>alert(1)" not in page


def test_a_search_query_in_arabic_sentences_is_isolated_and_escaped(transactional_app) -> None:
    page = transactional_app.test_client().get(
        "/conditions", query_string={"q": SCRIPTED, "lang": "ar"}).get_data(as_text=True)
    assert f"<bdi>{ESCAPED}</bdi>" in page
    assert "<script>alert(1)" not in page


def test_pseudonyms_in_arabic_headings_and_lists_are_isolated(transactional_app,
                                                              session) -> None:
    from tests.members_helpers import add_member, sign_in

    # Two members alone in the South Pacific: each is the other's only neighbour.
    ada, _ = add_member(session, "ada-bidi", lat=-40.0, lng=-140.0)
    add_member(session, "bo-bidi", lat=-40.01, lng=-140.01)
    session.commit()
    client = transactional_app.test_client()
    sign_in(client, ada)
    settings = client.get("/settings?lang=ar").get_data(as_text=True)
    assert re.search(r"<h1>[^<]*<bdi>ada-bidi</bdi>[^<]*</h1>", settings)
    connect = client.get("/connect/bo-bidi?lang=ar").get_data(as_text=True)
    assert re.search(r"<h1>[^<]*<bdi>bo-bidi</bdi>[^<]*</h1>", connect)
    assert "<title>" in connect and "<bdi>" not in connect.split("</title>")[0]
    nearby = client.get("/nearby?condition=all&band=0&lang=ar").get_data(as_text=True)
    assert '<strong class="pseudonym"><bdi>bo-bidi</bdi></strong>' in nearby
    link = re.search(r'class="connect-link">(.*?)</a>', nearby, re.S).group(1)
    assert "<bdi>bo-bidi</bdi>" in link


def test_a_name_in_a_sentence_made_in_python_is_isolated_on_pages_and_plain_in_json(
        transactional_app, session) -> None:
    from sqlalchemy import text

    from tests.members_helpers import add_member, sign_in

    # "لا توجد لـ %(name)s خريطة...": the 404 of a catalogue entry without a map.
    session.execute(text("UPDATE catalogue_entries SET name = :name WHERE slug = 'orpha-399'"),
                    {"name": SCRIPTED})
    ada, _ = add_member(session, "ada-flash", lat=-41.0, lng=-141.0)
    add_member(session, "bo-flash", lat=-41.0, lng=-141.0)
    session.commit()
    client = transactional_app.test_client()
    page = client.get("/conditions/orpha-399/map?lang=ar")
    assert page.status_code == 404
    html = page.get_data(as_text=True)
    assert f"لا توجد لـ <bdi>{ESCAPED}</bdi> خريطة" in html
    assert "<script>alert(1)" not in html
    api = client.get("/api/v1/conditions/orpha-399/regions?lang=ar")
    assert api.status_code == 404
    assert api.get_json()["error"]["message"].startswith(f"لا توجد لـ {SCRIPTED} خريطة")
    # A flashed sentence: the request sent to a member.
    sign_in(client, ada)
    sent = client.post("/connect/bo-flash?lang=ar", data={"message": "مرحبا"},
                       follow_redirects=True).get_data(as_text=True)
    assert "أُرسل طلبك إلى <bdi>bo-flash</bdi>." in sent


def test_the_bdi_filter_escapes_before_it_isolates(app) -> None:
    from geomap.i18n.formats import bdi

    with app.app_context():
        rendered = app.jinja_env.from_string(
            "{% trans name=name|bdi %}Connect with {{ name }}{% endtrans %}").render(
                name="<b>x</b> & y")
    assert rendered == "Connect with <bdi>&lt;b&gt;x&lt;/b&gt; &amp; y</bdi>"
    assert str(bdi("ok")) == "<bdi>ok</bdi>"
