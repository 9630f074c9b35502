"""Real text for the knowledge benchmarks, embedded by the bundled model, cached under var/bench/.

The text is the docstrings of the Python standard library and of the installed packages: about 100,000 distinct
English paragraphs, on every machine that runs the platform, with no download. Beyond them (the 1,000,000 chunk
run), passages are windows of consecutive sentences, so they stay real text. Embedding them is the slow part (the
bundled MiniLM does about 60 passages per second per core), so vectors are saved as they are made and a later run
resumes where the last one stopped.

Usage: .venv/bin/python bench/corpus.py [--chunks 100000]   (builds the cache; the benchmarks call it too)
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "var" / "bench"
PASSAGES = CACHE / "passages.json"
MIN_CHARS, MAX_CHARS = 80, 600
SAVE_EVERY = 4096


def _docstring_paragraphs() -> list[str]:
    """Return the distinct paragraphs (80 to 600 characters) of every docstring in the stdlib and site-packages."""
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    seen: set[str] = set()
    found: list[str] = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            try:
                tree = ast.parse(path.read_bytes())
            except (SyntaxError, ValueError, OSError):
                continue
            for node in ast.walk(tree):
                if not isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    continue
                for paragraph in (ast.get_docstring(node) or "").split("\n\n"):
                    text = " ".join(paragraph.split())[:MAX_CHARS]
                    if len(text) >= MIN_CHARS and text not in seen:
                        seen.add(text)
                        found.append(text)
    return found


def _sentence_windows(paragraphs: list[str], wanted: int) -> list[str]:
    """Return up to ``wanted`` more passages: windows of 2 to 4 consecutive sentences across the paragraphs."""
    sentences = [s.strip() + "." for p in paragraphs for s in p.split(". ") if len(s.strip()) > 20]
    extra: list[str] = []
    for width in (2, 3, 4):
        for start in range(0, len(sentences) - width, 1):
            extra.append(" ".join(sentences[start : start + width])[:MAX_CHARS])
            if len(extra) >= wanted:
                return extra
    return extra


def passages(count: int) -> list[str]:
    """Return ``count`` passages of real text (cached after the first call)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    stored: list[str] = json.loads(PASSAGES.read_text()) if PASSAGES.exists() else []
    if len(stored) < count:
        paragraphs = stored or _docstring_paragraphs()
        if len(paragraphs) < count:
            paragraphs += _sentence_windows(paragraphs, count - len(paragraphs))
        stored = paragraphs
        PASSAGES.write_text(json.dumps(stored))
    if len(stored) < count:
        sys.exit(f"Only {len(stored)} passages of real text are available here; ask for fewer.")
    return stored[:count]


def vectors(texts: list[str], name: str) -> np.ndarray:
    """Return the bundled model's embeddings of ``texts`` (float32, unit length), cached as ``name``: the cache
    holds the vectors of a prefix of ``passages()``, so a larger run extends it."""
    path = CACHE / f"{name}.npy"
    done = np.load(path) if path.exists() else np.zeros((0, 384), dtype=np.float32)
    if len(done) >= len(texts):
        return done[: len(texts)]
    from providers_app.embeddings import LocalEmbedder

    embedder = LocalEmbedder()
    parts = [done]
    made = len(done)
    started = time.monotonic()
    while made < len(texts):
        batch = texts[made : made + SAVE_EVERY]
        parts.append(np.asarray(embedder.embed_sync(batch).vectors, dtype=np.float32))
        made += len(batch)
        np.save(path, np.concatenate(parts))
        rate = (made - len(done)) / (time.monotonic() - started)
        print(f"  embedded {made:,}/{len(texts):,} passages ({rate:.0f}/s)", flush=True)
    return np.concatenate(parts)


def setup_django() -> None:
    """Configure Django as the benchmarks run it: DATABASE_URL, else an embedded database under var/bench/."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOCAL_EMBEDDING_THREADS", str(os.cpu_count() or 1))  # this process has the machine
    if not os.environ.get("DATABASE_URL"):
        os.environ.setdefault("VAR_DIR", str(CACHE))
    os.environ.setdefault("LOG_LEVEL", "warning")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    setup_django()
    texts = passages(args.chunks + args.queries)
    vectors(texts, "vectors")


if __name__ == "__main__":
    main()
