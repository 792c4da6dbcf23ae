"""Miniature replicas of the real ``mlebench prepare`` output of the paper's six MLE-bench competitions.

File names, columns, formats and the answers' shape follow each competition's ``prepare.py`` in openai/mle-bench
(read, not copied): e.g. random-acts-of-pizza's JSON data and ``sampleSubmission.csv``, detecting-insults' id-less
``Insult, Date, Comment`` files and ``sample_submission_null.csv``, nomad2018's per-id geometry folders, jigsaw's -1
rows of unscored answers, aerial-cactus' image zips with no ``test.csv``. The data are random but seeded. Each builder
writes ``<root>/<id>/prepared/{public,private}`` (MLE-bench's data-root layout) and returns ``<root>/<id>``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

JIGSAW_LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
WORDS = ("the night was dark and the house stood silent upon the hill while strange lights moved across "
         "ancient stones and I could not tell whether I dreamed or woke").split()


def _dirs(root: Path, competition_id: str) -> tuple[Path, Path, Path]:
    comp = root / competition_id
    public, private = comp / "prepared" / "public", comp / "prepared" / "private"
    public.mkdir(parents=True)
    private.mkdir(parents=True)
    (public / "description.md").write_text(f"# {competition_id}\n\nA miniature replica for tests.\n")
    return comp, public, private


def _text(rng: np.random.RandomState, n: int = 8) -> str:
    return " ".join(rng.choice(WORDS, n))


def _split(n: int, test: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(n - test), np.arange(n - test, n)


def pizza(root: Path, n: int = 40, test: int = 16) -> Path:
    """train.json / test.json (+ their zips), sampleSubmission.csv, private/test.csv (int labels)."""
    rng = np.random.RandomState(1)
    comp, public, private = _dirs(root, "random-acts-of-pizza")
    rows = []
    for i in range(n):
        rows.append({
            "giver_username_if_known": "N/A", "number_of_downvotes_of_request_at_retrieval": int(rng.randint(5)),
            "number_of_upvotes_of_request_at_retrieval": int(rng.randint(20)), "post_was_edited": bool(rng.rand() < .2),
            "request_id": f"t3_{i:05x}q", "request_number_of_comments_at_retrieval": int(rng.randint(10)),
            "request_text": _text(rng, 20), "request_text_edit_aware": _text(rng, 20), "request_title": _text(rng, 6),
            "requester_account_age_in_days_at_request": float(rng.rand() * 900),
            "requester_number_of_comments_at_request": int(rng.randint(500)),
            "requester_number_of_posts_at_request": int(rng.randint(100)),
            "requester_received_pizza": bool(i % 3 == 0),
            "requester_subreddits_at_request": ["AskReddit", "pizza"][: rng.randint(3)],
            "requester_upvotes_minus_downvotes_at_request": int(rng.randint(-5, 900)),
            "requester_user_flair": None, "requester_username": f"user{i}",
            "unix_timestamp_of_request": 1.3e9 + i * 1000.0, "unix_timestamp_of_request_utc": 1.3e9 + i * 1000.0})
    train_idx, test_idx = _split(n, test)
    test_fields = [k for k in rows[0] if "at_retrieval" not in k and k not in
                   ("post_was_edited", "request_text", "requester_received_pizza", "requester_user_flair")]
    train = [rows[i] for i in train_idx]
    tests = [{k: rows[i][k] for k in test_fields} for i in test_idx]
    for name, data in (("train", train), ("test", tests)):
        (public / f"{name}.json").write_text(json.dumps(data, indent=4))
        with zipfile.ZipFile(public / f"{name}.zip", "w") as archive:
            archive.write(public / f"{name}.json", f"{name}.json")
    answers = pd.DataFrame({"request_id": [rows[i]["request_id"] for i in test_idx],
                            "requester_received_pizza": [int(rows[i]["requester_received_pizza"]) for i in test_idx]})
    answers.to_csv(private / "test.csv", index=False)
    answers.assign(requester_received_pizza=0).to_csv(public / "sampleSubmission.csv", index=False)
    (comp / "random-acts-of-pizza.zip").write_bytes(b"PK\x05\x06" + bytes(18))  # the raw download stays beside
    return comp


def spooky(root: Path, n: int = 60, test: int = 21) -> Path:
    """train.csv (id, text, author), test.csv, sample_submission.csv (fixed priors), private one-hot test.csv."""
    rng = np.random.RandomState(2)
    comp, public, private = _dirs(root, "spooky-author-identification")
    ids = [f"id{rng.randint(10000, 99999)}{i}" for i in range(n)]
    authors = np.array(["EAP", "HPL", "MWS"])[np.arange(n) % 3]
    frame = pd.DataFrame({"id": ids, "text": [_text(rng) + "." for _ in range(n)], "author": authors})
    train_idx, test_idx = _split(n, test)
    frame.iloc[train_idx].to_csv(public / "train.csv", index=False)
    frame.iloc[test_idx].drop(columns=["author"]).to_csv(public / "test.csv", index=False)
    onehot = pd.DataFrame({"id": frame["id"].iloc[test_idx]})
    for author in ("EAP", "HPL", "MWS"):
        onehot[author] = (frame["author"].iloc[test_idx] == author).astype(int)
    onehot.to_csv(private / "test.csv", index=False)
    onehot.assign(EAP=0.403493538995863, HPL=0.287808366106543, MWS=0.308698094897594).to_csv(
        public / "sample_submission.csv", index=False)
    return comp


def insults(root: Path, n: int = 50, test: int = 20) -> Path:
    """Insult, Date, Comment (no id column; dates like 20120618192155Z or empty), sample_submission_null.csv,
    private test.csv with Usage, private gold_submission.csv."""
    rng = np.random.RandomState(3)
    comp, public, private = _dirs(root, "detecting-insults-in-social-commentary")
    comments = [f'"{_text(rng, 10)} \\xa0#{i}"' for i in range(n)]
    dates = [f"201206{10 + i % 19:02d}{rng.randint(100000, 235959)}Z" if i % 4 else "" for i in range(n)]
    frame = pd.DataFrame({"Insult": (np.arange(n) % 3 == 0).astype(int), "Date": dates, "Comment": comments})
    train_idx, test_idx = _split(n, test)
    frame.iloc[train_idx].to_csv(public / "train.csv", index=False)
    held = frame.iloc[test_idx].reset_index(drop=True)
    held.assign(Usage=np.where(np.arange(test) % 2, "PrivateTest", "PublicTest")).to_csv(
        private / "test.csv", index=False)
    held.to_csv(private / "gold_submission.csv", index=False)
    held.drop(columns=["Insult"]).to_csv(public / "test.csv", index=False)
    held.assign(Insult=0).to_csv(public / "sample_submission_null.csv", index=False)
    return comp


def nomad(root: Path, n: int = 40, test: int = 12) -> Path:
    """train.csv / test.csv (ids from 1 in each), train/<id>/geometry.xyz and test/<id>/geometry.xyz, the sample's
    fixed means, private test.csv holding every column."""
    rng = np.random.RandomState(4)
    comp, public, private = _dirs(root, "nomad2018-predict-transparent-conductors")
    al = rng.rand(n)
    frame = pd.DataFrame({
        "id": 0, "spacegroup": rng.choice([12, 33, 167, 194, 206, 227], n),
        "number_of_total_atoms": rng.choice([10.0, 20.0, 30.0, 40.0, 60.0, 80.0], n),
        "percent_atom_al": al, "percent_atom_ga": (1 - al) / 2, "percent_atom_in": (1 - al) / 2,
        "lattice_vector_1_ang": 5 + rng.rand(n) * 20, "lattice_vector_2_ang": 5 + rng.rand(n) * 5,
        "lattice_vector_3_ang": 5 + rng.rand(n) * 15, "lattice_angle_alpha_degree": 90 + rng.randn(n),
        "lattice_angle_beta_degree": 90 + rng.randn(n), "lattice_angle_gamma_degree": 90 + rng.randn(n) * 10,
        "formation_energy_ev_natom": 0.05 + 0.3 * rng.rand(n), "bandgap_energy_ev": 0.5 + 4 * al})
    train_idx, test_idx = _split(n, test)
    train = frame.iloc[train_idx].assign(id=np.arange(1, len(train_idx) + 1))
    held = frame.iloc[test_idx].assign(id=np.arange(1, test + 1))
    train.to_csv(public / "train.csv", index=False)
    held.to_csv(private / "test.csv", index=False)
    held.drop(columns=["formation_energy_ev_natom", "bandgap_energy_ev"]).to_csv(public / "test.csv", index=False)
    for split, ids in (("train", train["id"]), ("test", held["id"])):
        for i in ids:
            (public / split / str(i)).mkdir(parents=True)
            (public / split / str(i) / "geometry.xyz").write_text(
                "#=======================================================\n#Created using the Atomic Simulation "
                f"Environment (ASE)\nlattice_vector 9.95 0.0 0.0\natom 0.0 0.0 {i * 0.1:.2f} Ga\n")
    pd.DataFrame({"id": held["id"], "formation_energy_ev_natom": 0.1779, "bandgap_energy_ev": 1.8892}).to_csv(
        public / "sample_submission.csv", index=False)
    return comp


def jigsaw(root: Path, n: int = 60, test: int = 30, unscored: int = 6) -> Path:
    """train.csv (id, comment_text, six labels), test.csv, sample_submission.csv (0.5), private test.csv whose
    ``unscored`` rows are -1 in every label (Kaggle's test_labels.csv)."""
    rng = np.random.RandomState(5)
    comp, public, private = _dirs(root, "jigsaw-toxic-comment-classification-challenge")
    ids = [f"{rng.randint(0, 2**40):016x}" for _ in range(n)]
    labels = (rng.rand(n, 6) < [0.4, 0.2, 0.3, 0.15, 0.3, 0.2]).astype(int)
    labels[np.arange(6) * 2, np.arange(6)] = 1  # every label has a positive among the scored test rows ...
    labels[np.arange(6) * 2 + 1, np.arange(6)] = 0  # ... and a negative
    labels = np.roll(labels, n - test, axis=0)  # (moved into the test rows)
    frame = pd.DataFrame({"id": ids, "comment_text": [_text(rng, 12) for _ in range(n)]})
    frame[JIGSAW_LABELS] = labels
    train_idx, test_idx = _split(n, test)
    frame.iloc[train_idx].to_csv(public / "train.csv", index=False)
    frame.iloc[test_idx][["id", "comment_text"]].to_csv(public / "test.csv", index=False)
    answers = frame.iloc[test_idx][["id", *JIGSAW_LABELS]].reset_index(drop=True)
    answers.loc[test - unscored:, JIGSAW_LABELS] = -1
    answers.to_csv(private / "test.csv", index=False)
    answers.assign(**{c: 0.5 for c in JIGSAW_LABELS}).to_csv(public / "sample_submission.csv", index=False)
    return comp


def _jpeg(rng: np.random.RandomState) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rng.randint(0, 255, (32, 32, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def cactus(root: Path, n: int = 30, test: int = 10, folders: bool = False) -> Path:
    """train.csv (id = image file name, has_cactus), train.zip / test.zip of 32x32 JPEGs at the archive root (or,
    with ``folders``, train/ and test/ image folders), sample_submission.csv (0.5), private test.csv, no test.csv."""
    rng = np.random.RandomState(6)
    comp, public, private = _dirs(root, "aerial-cactus-identification")
    ids = [f"{rng.randint(0, 2**62):032x}.jpg" for _ in range(n)]
    frame = pd.DataFrame({"id": ids, "has_cactus": (np.arange(n) % 4 != 0).astype(int)})
    train_idx, test_idx = _split(n, test)
    frame.iloc[train_idx].to_csv(public / "train.csv", index=False)
    frame.iloc[test_idx].to_csv(private / "test.csv", index=False)
    frame.iloc[test_idx].assign(has_cactus=0.5).to_csv(public / "sample_submission.csv", index=False)
    for split, idx in (("train", train_idx), ("test", test_idx)):
        if folders:
            (public / split).mkdir()
            for i in idx:
                (public / split / ids[i]).write_bytes(_jpeg(rng))
        else:
            with zipfile.ZipFile(public / f"{split}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
                for i in idx:
                    archive.writestr(ids[i], _jpeg(rng))
    return comp


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "random-acts-of-pizza": pizza,
    "spooky-author-identification": spooky,
    "detecting-insults-in-social-commentary": insults,
    "nomad2018-predict-transparent-conductors": nomad,
    "jigsaw-toxic-comment-classification-challenge": jigsaw,
    "aerial-cactus-identification": cactus,
}


def build_all(root: Path) -> Path:
    """All six under one MLE-bench data root; returns the root."""
    root.mkdir(parents=True, exist_ok=True)
    for build in BUILDERS.values():
        build(root)
    return root


def tree_digest(path: Path) -> dict[str, str]:
    """Every entry under ``path`` (files, folders, links) with its kind, mode and, for files, sha256 of its bytes."""
    import hashlib
    import os

    digest = {}
    for directory, subdirs, files in os.walk(path):
        for name in sorted(subdirs + files):
            full = Path(directory) / name
            info = full.lstat()
            key = str(full.relative_to(path))
            if full.is_symlink():
                digest[key] = f"link {os.readlink(full)}"
            elif full.is_dir():
                digest[key] = f"dir {oct(info.st_mode)}"
            else:
                digest[key] = f"file {oct(info.st_mode)} {info.st_size} {info.st_mtime_ns} " + hashlib.sha256(
                    full.read_bytes()).hexdigest()
    return digest
