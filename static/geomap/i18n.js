/* geomap i18n: the page's translated strings (a JSON data block the server renders in
 * the viewer's language) and number formatting for the page's language.
 *
 *   geomap.t("map.join")                        a sentence
 *   geomap.t("map.area", {place: "Lyon"})       with named placeholders, %(place)s
 *   geomap.tn("map.members", 12345)             with a count: the CLDR plural form,
 *                                               %(count)s filled with the formatted number
 *   geomap.formatNumber(12345)                  "12,345" / "12.345" / "12 345"
 *   geomap.isolate("Hamburg")                   a name to put into a sentence, isolated
 *
 * On pages that ask for it (data-set-tz on <html>) it remembers the browser's time zone
 * in a cookie, so the server shows times in it. */
(function () {
  "use strict";
  var geomap = (window.geomap = window.geomap || {});
  var root = document.documentElement;
  var lang = root.lang || "en";
  var messages = null;
  var numbers = null;
  var plurals = null;

  function catalogue() {
    if (messages === null) {
      var block = document.getElementById("geomap-messages");
      try { messages = block ? JSON.parse(block.textContent) : {}; } catch (e) { messages = {}; }
    }
    return messages;
  }

  function fill(text, params) {
    return String(text).replace(/%\((\w+)\)s/g, function (whole, name) {
      return params && params[name] !== undefined ? String(params[name]) : whole;
    });
  }

  geomap.formatNumber = function (n) {
    if (numbers === null) {
      try { numbers = new Intl.NumberFormat(lang, {numberingSystem: "latn"}); }
      catch (e) { numbers = new Intl.NumberFormat("en"); }
    }
    return numbers.format(n);
  };

  // A name put into a sentence (a GeoNames place) between Unicode isolates (FSI ... PDI):
  // in a sentence of another script it keeps its own direction and leaves the sentence's
  // punctuation and numbers in place. For text (textContent, aria-label); the pages' own
  // HTML uses <bdi> (the bdi filter).
  geomap.isolate = function (name) {
    return "\u2068" + name + "\u2069";
  };

  geomap.t = function (key, params) {
    var text = catalogue()[key];
    if (text === undefined) return key;
    if (typeof text === "object") text = text.other;
    return fill(text, params);
  };

  geomap.tn = function (key, n, params) {
    var forms = catalogue()[key];
    if (forms === undefined) return key;
    if (plurals === null) {
      try { plurals = new Intl.PluralRules(lang); } catch (e) { plurals = new Intl.PluralRules("en"); }
    }
    var text = typeof forms === "object" ? (forms[plurals.select(n)] || forms.other) : forms;
    var values = {count: geomap.formatNumber(n)};
    Object.keys(params || {}).forEach(function (k) { values[k] = params[k]; });
    return fill(text, values);
  };

  if (root.hasAttribute("data-set-tz") && window.Intl && Intl.DateTimeFormat) {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && /^[A-Za-z0-9_+\/-]+$/.test(zone) && document.cookie.indexOf("geomap_tz=" + zone) === -1) {
      document.cookie = "geomap_tz=" + zone +
        "; path=/; max-age=31536000; SameSite=Lax";
    }
  }
})();
