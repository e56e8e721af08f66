"""Exercises for the course edition, checked against the simulator's truth or a notebook's results.

>>> import attune_lib as al
>>> al.teach.exercises("03b_chromatin_potential")              # doctest: +SKIP
>>> al.teach.check("03b_chromatin_potential", "lagging_genes", ["Gli3", "Gene0149"], mdata=mdata)  # doctest: +SKIP

Every answer key is computed when it is asked for: from ``mdata.uns["truth"]`` (the simulator's truth,
with its noise-free layers and ``obs``) or from the tables the notebook wrote to its results folder.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .._utils import AttuneInputError
from ._check import CheckResult, Context, Exercise
from ._exercises import EXERCISES, PRESETS

__all__ = ["check", "exercises", "answer_key", "get_exercise", "CheckResult", "Exercise"]


def _notebook_id(notebook: str) -> str:
    name = str(notebook)
    name = name.rsplit("/", 1)[-1].removesuffix(".ipynb")
    if name in EXERCISES:
        return name
    matches = [k for k in EXERCISES if k.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise AttuneInputError(f"notebook {notebook!r} is ambiguous: it matches {', '.join(matches)}")
    raise AttuneInputError(f"notebook {notebook!r} has no exercises; notebooks with exercises: "
                           f"{', '.join(EXERCISES)}")


def get_exercise(notebook: str, exercise: str) -> Exercise:
    """The registered exercise ``exercise`` of ``notebook``.

    Parameters
    ----------
    notebook
        Notebook id (its file stem, e.g. ``"03b_chromatin_potential"``; a unique prefix works too).
    exercise
        Exercise id, as listed by :func:`exercises`.

    Raises
    ------
    AttuneInputError
        Naming the notebook and listing its exercises when the id is unknown.
    """
    nb = _notebook_id(notebook)
    for ex in EXERCISES[nb]:
        if ex.id == exercise:
            return ex
    raise AttuneInputError(f"notebook {nb!r} has no exercise {exercise!r}; its exercises: "
                           f"{', '.join(e.id for e in EXERCISES[nb])}")


def exercises(notebook: str | None = None) -> pd.DataFrame:
    """The registered exercises: notebook, id, question, answer kind and what the key is computed from.

    Parameters
    ----------
    notebook
        Only this notebook's exercises; None lists all of them.
    """
    nbs = [_notebook_id(notebook)] if notebook is not None else list(EXERCISES)
    rows = [{"notebook": nb, "exercise": ex.id, "question": ex.question, "kind": ex.kind, "checked_against":
             ex.source} for nb in nbs for ex in EXERCISES[nb]]
    return pd.DataFrame(rows, columns=["notebook", "exercise", "question", "kind", "checked_against"])


def _context(nb: str, mdata, results) -> Context:
    def simulate():
        from ..datasets import load_dataset

        return load_dataset("simulated", preset=PRESETS.get(nb, "pbmc"), small=True, seed=0)

    return Context(nb, mdata=mdata, results=results, default_mdata=simulate)


def answer_key(notebook: str, exercise: str, *, mdata=None, results=None) -> dict:
    """The answer key of one exercise, computed now from the truth or the results (for teachers).

    Parameters
    ----------
    notebook
        Notebook id.
    exercise
        Exercise id.
    mdata
        The notebook's MuData; None simulates the notebook's default data (small size, seed 0).
    results
        The notebook's results folder, or a dict of result file name -> DataFrame/dict.

    Returns
    -------
    dict
        ``answer`` (and, depending on the kind, ``accept``, ``aliases``, ``partly`` or tolerances).
    """
    nb = _notebook_id(notebook)
    return get_exercise(nb, exercise).key(_context(nb, mdata, results))


def check(notebook: str, exercise: str, answer: Any, *, mdata=None, results=None,
          verbose: bool = True) -> CheckResult:
    """Check an answer: right, partly right (with a hint) or wrong.

    Parameters
    ----------
    notebook
        Notebook id (file stem, e.g. ``"03b_chromatin_potential"``).
    exercise
        Exercise id (see :func:`exercises`).
    answer
        The answer: a name, a list of names, a number or a pair of numbers, as the question asks.
        None means "no answer yet" (the question is repeated).
    mdata
        The notebook's MuData, whose ``uns["truth"]`` is the answer key of truth exercises; None simulates
        the notebook's default data (small size, seed 0).
    results
        The notebook's results folder (``results_dir``), or a dict of result file name -> object, for the
        exercises checked against the notebook's own results.
    verbose
        Print the verdict.

    Returns
    -------
    CheckResult
        ``status`` (``"right"``, ``"partly"``, ``"wrong"``, ``"no answer"``) and ``message``.

    Raises
    ------
    AttuneInputError
        For an unknown notebook or exercise id (the message lists the known ones), or when the key
        cannot be computed (no truth, a missing result file).
    """
    nb = _notebook_id(notebook)
    ex = get_exercise(nb, exercise)
    result = ex.grade(nb, answer, _context(nb, mdata, results))
    if verbose:
        print(result)
    return result
