"""Soulmates benchmarks: ranking quality, and speed at scale.

Ranking quality (no database)::

    .venv/bin/python bench/soulmates.py quality --diseases 200 --profiles 4

builds noisy profiles from the disease annotations shipped with hpo3 (Orphanet and
OMIM diseases with at least 10 phenotype terms; each profile draws 11 of them, like
the ~11 HPO terms per case of the Matchmaker Exchange, then about 40 % are dropped
and about half of the rest replaced by a parent, as the demo does), mixes
them, and reports for each method how often a profile's top 1 and top 5 include a
profile of the same disease: Jaccard on term ids (baseline), our Resnik best-match
average (geomap.symptoms.similarity, from the same ancestors and IC the database
holds), hpo3's own Resnik/BMA computed brute force, and hpo3's default
(graphic IC, funSimAvg) for comparison.

Speed at scale (a database with demo members, e.g. after ``geomap demo``)::

    GEOMAP_DATA_DIR=var GEOMAP_DB_PORT=55435 .venv/bin/python bench/soulmates.py scale

times "my soulmates" over HTTP (p50/p95), its recall of the top 20 against an exact
brute-force ranking of every listable opted-in member of the condition, the cost of
adding one symptom over HTTP, and the web worker's RSS before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from geomap.symptoms.demo import noisy_profile  # noqa: E402
from geomap.symptoms.similarity import SetScorer  # noqa: E402
from geomap.symptoms.vocabulary import iter_terms, ontology  # noqa: E402


def disease_profiles(diseases: int, per_disease: int, seed: int, draw: int,
                     min_terms: int = 10) -> tuple[list[list[int]], list[int], dict, dict]:
    """Return noisy profiles, their disease labels, and the ancestors and IC of every term.

    Each profile draws ``draw`` of its disease's terms (0: all of them), then drops
    and coarsens them like the demo (geomap.symptoms.demo.noisy_profile).
    """
    terms = {t.id: t for t in iter_terms()}
    ancestors = {t.id: t.ancestors for t in terms.values()}
    ic = {t.id: t.ic for t in terms.values()}
    parents = {t.id: t.parents for t in terms.values()}
    onto = ontology()
    annotated = []
    for disease in sorted(list(onto.omim_diseases) + list(onto.orpha_diseases),
                          key=lambda d: (type(d).__name__, d.id)):
        pool = sorted({int(t) for t in disease.hpo} & terms.keys())
        if len(pool) >= min_terms:
            annotated.append(pool)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(annotated), size=min(diseases, len(annotated)), replace=False)
    profiles, labels = [], []
    for label, index in enumerate(chosen.tolist()):
        pool = annotated[index]
        for _ in range(per_disease):
            profiles.append(noisy_profile(rng, pool, parents, draw or len(pool)))
            labels.append(label)
    return profiles, labels, ancestors, ic


def hit_rates(scores: np.ndarray, labels: list[int]) -> tuple[float, float]:
    """Return the top-1 and top-5 same-disease rates of a full score matrix (self excluded)."""
    labels_arr = np.asarray(labels)
    top1 = top5 = 0
    for i in range(len(labels)):
        row = scores[i].copy()
        row[i] = -np.inf
        order = np.lexsort((np.arange(len(row)), -row))[:5]
        same = labels_arr[order] == labels_arr[i]
        top1 += bool(same[0])
        top5 += bool(same.any())
    return top1 / len(labels), top5 / len(labels)


def jaccard_matrix(profiles: list[list[int]]) -> np.ndarray:
    """Return the Jaccard similarity of every pair of profiles (term ids)."""
    sets = [set(p) for p in profiles]
    n = len(sets)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            union = len(sets[i] | sets[j])
            out[i, j] = out[j, i] = len(sets[i] & sets[j]) / union if union else 0.0
    return out


def ours_matrix(profiles: list[list[int]], ancestors: dict, ic: dict) -> np.ndarray:
    """Return our Resnik best-match average of every pair of profiles."""
    n = len(profiles)
    out = np.zeros((n, n))
    for i, profile in enumerate(profiles):
        scorer = SetScorer(profile, ancestors, ic)
        out[i] = [scorer.score(other) for other in profiles]
    return out


def hpo3_matrix(profiles: list[list[int]], method: str, combine: str) -> np.ndarray:
    """Return hpo3's own set similarity of every pair of profiles, brute force."""
    from pyhpo import HPOSet

    sets = [HPOSet(p) for p in profiles]
    return np.array([s.similarity_scores(sets, kind="omim", method=method, combine=combine)
                     for s in sets])


def quality(args: argparse.Namespace) -> None:
    """Print the ranking-quality table."""
    started = time.perf_counter()
    profiles, labels, ancestors, ic = disease_profiles(args.diseases, args.profiles, args.seed,
                                                       args.draw)
    sizes = [len(p) for p in profiles]
    print(f"{len(set(labels))} diseases x {args.profiles} noisy profiles = {len(profiles)} "
          f"profiles, each drawing {args.draw or 'all'} annotated terms before the noise; "
          f"terms per profile: median {statistics.median(sizes):g}, "
          f"min {min(sizes)}, max {max(sizes)} (built in {time.perf_counter() - started:.1f} s)")
    methods = [
        ("Jaccard on term ids (baseline)", lambda: jaccard_matrix(profiles)),
        ("Resnik BMA, geomap (chosen)", lambda: ours_matrix(profiles, ancestors, ic)),
        ("Resnik BMA, hpo3 brute force", lambda: hpo3_matrix(profiles, "resnik", "BMA")),
        ("graphic IC funSimAvg, hpo3 default", lambda: hpo3_matrix(profiles, "graphic",
                                                                   "funSimAvg")),
    ]
    print("\n| method | top-1 same disease | top-5 same disease | seconds |")
    print("|---|---|---|---|")
    matrices = {}
    for name, compute in methods:
        started = time.perf_counter()
        matrix = compute()
        seconds = time.perf_counter() - started
        matrices[name] = matrix
        top1, top5 = hit_rates(matrix, labels)
        print(f"| {name} | {top1:.1%} | {top5:.1%} | {seconds:.1f} |")
    ours, theirs = matrices[methods[1][0]], matrices[methods[2][0]]
    print(f"\nmax |geomap - hpo3| Resnik BMA over all pairs: {np.abs(ours - theirs).max():.2e}")


def main() -> None:
    """Run the benchmark named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality", help="ranking quality from hpo3's disease annotations")
    q.add_argument("--diseases", type=int, default=200)
    q.add_argument("--profiles", type=int, default=4)
    q.add_argument("--seed", type=int, default=1)
    q.add_argument("--draw", type=int, default=11,
                   help="annotated terms a profile draws before the noise (0: all)")
    s = sub.add_parser("scale", help="speed at scale against a demo database")
    s.add_argument("--probes", type=int, default=40)
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--recall-probes", type=int, default=20)
    s.add_argument("--seed", type=float, default=0.42)
    s.add_argument("--prepare", type=int, default=0,
                   help="first load this many demo members, half with symptoms")
    args = parser.parse_args()
    if args.command == "quality":
        quality(args)
    else:
        from soulmates_scale import scale

        scale(args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
