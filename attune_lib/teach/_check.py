"""Checking a student's answer against a computed answer key.

An :class:`Exercise` knows how to compute its answer key (from the simulator's truth in
``mdata.uns["truth"]`` or from the tables a notebook wrote to its results folder) and how to grade an
answer: ``right``, ``partly`` right (with a hint) or ``wrong``. Nothing here stores an answer: every key
is computed when :func:`check` is called, so it follows the data the notebook actually ran on.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._utils import AttuneInputError

__all__ = ["Exercise", "CheckResult", "Context"]

STATUSES = ("right", "partly", "wrong", "no answer")


@dataclass
class CheckResult:
    """The verdict on one answer.

    Parameters
    ----------
    notebook, exercise
        Notebook id and exercise id.
    status
        ``"right"``, ``"partly"``, ``"wrong"`` or ``"no answer"``.
    message
        What to tell the student (a hint when partly right or wrong).
    """

    notebook: str
    exercise: str
    status: str
    message: str

    @property
    def ok(self) -> bool:
        """True when the answer is right."""
        return self.status == "right"

    def __str__(self) -> str:
        mark = {"right": "RIGHT", "partly": "PARTLY RIGHT", "wrong": "WRONG", "no answer": "NO ANSWER YET"}
        return f"[{mark[self.status]}] {self.notebook} / {self.exercise}: {self.message}"

    def __repr__(self) -> str:
        return str(self)


class Context:
    """What an answer key is computed from: the MuData (with its truth) and the notebook's results.

    Parameters
    ----------
    notebook
        Notebook id (for error messages).
    mdata
        The notebook's MuData (its ``uns["truth"]`` is the simulator's truth), or None.
    results
        The notebook's results folder (a path), or a dict mapping result file names to objects
        (DataFrames, dicts), or None.
    default_mdata
        Called without arguments to simulate the notebook's default data when ``mdata`` is None.
    """

    def __init__(self, notebook: str, mdata=None, results=None, default_mdata: Callable | None = None):
        self.notebook = notebook
        self._mdata = mdata
        self._results = results
        self._default_mdata = default_mdata

    @property
    def mdata(self):
        """The MuData; simulated with the notebook's defaults when none was given."""
        if self._mdata is None:
            if self._default_mdata is None:
                raise AttuneInputError(f"{self.notebook}: this exercise needs mdata=")
            self._mdata = self._default_mdata()
        return self._mdata

    @property
    def truth(self) -> dict:
        """``mdata.uns["truth"]``; a clear error when the data is not simulated."""
        truth = self.mdata.uns.get("truth")
        if not truth:
            raise AttuneInputError(
                f"{self.notebook}: this exercise is checked against the simulator's truth "
                "(mdata.uns['truth']), and this MuData has none; run the notebook on the simulator "
                "(dataset='simulated')")
        return truth

    def result(self, name: str):
        """One result of the notebook: a CSV (DataFrame) or JSON (dict) file in its results folder."""
        import json

        import pandas as pd

        res = self._results
        if isinstance(res, dict):
            if name not in res:
                raise AttuneInputError(
                    f"{self.notebook}: results= has no {name!r} (given: {', '.join(map(str, res)) or 'none'})")
            return res[name]
        if res is None:
            raise AttuneInputError(
                f"{self.notebook}: this exercise is checked against the notebook's own results; pass "
                f"results=results_dir (the folder the notebook wrote {name} to)")
        path = Path(os.fspath(res)) / name
        if not path.exists():
            raise AttuneInputError(
                f"{self.notebook}: result file {path} not found; run the notebook's cells above first")
        if path.suffix == ".json":
            return json.loads(path.read_text())
        return pd.read_csv(path)


def _norm(x: Any) -> str:
    return " ".join(str(x).strip().lower().replace("_", " ").replace("-", " ").split())


def _as_list(answer: Any) -> list:
    if isinstance(answer, str):
        parts = [a for a in answer.replace(";", ",").split(",")]
        return [p.strip() for p in parts if p.strip()]
    if isinstance(answer, dict):
        return list(answer)
    if hasattr(answer, "tolist"):
        answer = answer.tolist()
    if isinstance(answer, Iterable):
        return list(answer)
    return [answer]


def _as_number(answer: Any) -> float | None:
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@dataclass
class Exercise:
    """One exercise: a question, how to compute its answer key, and how to grade an answer.

    Parameters
    ----------
    id
        Exercise id, unique within the notebook.
    question
        The question, in plain words.
    kind
        How answers are graded:

        - ``"choice"``: one name; ``key`` is ``{"answer": name, "aliases": [...], "partly": {name: hint}}``;
        - ``"set"``: a collection of names; ``key`` is ``{"answer": [...], "accept": [...] (optional)}``:
          right when every name is in ``accept`` (default: ``answer``) and there are ``len(answer)``
          of them (or as many as ``answer`` when ``exact``), partly when some are;
        - ``"number"``: ``key`` is ``{"answer": x, "right": tol, "partly": tol}`` (absolute tolerances,
          or relative when ``"relative": True``);
        - ``"interval"``: two numbers; ``key`` as for ``"number"`` with ``answer`` a pair.
    source
        ``"truth"`` (the simulator's truth) or ``"results"`` (the notebook's result files).
    key
        Called with a :class:`Context`; returns the answer key (a dict, see ``kind``).
    hint
        Shown when the answer is partly right or wrong.
    example
        An example of the answer's form (shown when no answer is given).
    exact
        For ``"set"`` answers: the answer must have exactly as many names as the key (otherwise a
        right but incomplete list is only partly right; with ``exact=False`` too).
    """

    id: str
    question: str
    kind: str
    source: str
    key: Callable[[Context], dict]
    hint: str = ""
    example: str = ""
    exact: bool = field(default=True)

    def grade(self, notebook: str, answer: Any, ctx: Context) -> CheckResult:
        """Grade ``answer``; see :func:`attune_lib.teach.check`.

        Parameters
        ----------
        notebook
            Notebook id (for the message).
        answer
            The student's answer; None means no answer yet.
        ctx
            Where the answer key comes from.
        """
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            form = f" (for example {self.example})" if self.example else ""
            return CheckResult(notebook, self.id, "no answer",
                               f"{self.question} Replace `answer = None` with your answer{form}.")
        key = self.key(ctx)
        grader = {"choice": self._choice, "set": self._set, "number": self._number, "interval": self._interval}
        if self.kind not in grader:  # pragma: no cover - registry error
            raise AttuneInputError(f"{notebook}/{self.id}: unknown exercise kind {self.kind!r}")
        status, message = grader[self.kind](answer, key)
        if status != "right" and self.hint:
            message = f"{message} Hint: {self.hint}"
        return CheckResult(notebook, self.id, status, message)

    def _choice(self, answer, key):
        given = _norm(answer)
        names = [key["answer"], *key.get("aliases", [])]
        if given in {_norm(n) for n in names}:
            return "right", f"{answer!r} is right."
        for name, why in key.get("partly", {}).items():
            if given == _norm(name):
                return "partly", f"{answer!r} is close: {why}"
        return "wrong", f"{answer!r} is not it."

    def _set(self, answer, key):
        given = _as_list(answer)
        if not given:
            return "wrong", "the answer is empty."
        want = list(key["answer"])
        accept = {_norm(a) for a in key.get("accept", want)}
        hits = [g for g in dict.fromkeys(_norm(g) for g in given) if g in accept]
        extra = len(set(map(_norm, given))) - len(hits)
        n = len(want)
        if len(hits) == n and extra == 0:
            return "right", f"all {n} are right."
        if self.exact and len(set(map(_norm, given))) != n and len(hits) == len(set(map(_norm, given))):
            return "partly", f"{len(hits)} of your answers are right, but the answer has {n} names."
        if hits:
            return "partly", f"{len(hits)} of {n} are right ({extra} of yours are not)."
        return "wrong", f"none of {', '.join(map(str, given))} is right."

    @staticmethod
    def _close(given: float, want: float, tol: float, relative: bool) -> bool:
        return abs(given - want) <= (tol * abs(want) if relative else tol)

    def _number(self, answer, key):
        given = _as_number(answer)
        if given is None:
            return "wrong", f"expected a number, got {answer!r}."
        want, rel = float(key["answer"]), key.get("relative", False)
        if self._close(given, want, key["right"], rel):
            return "right", f"{given:g} is right (within the tolerance)."
        if self._close(given, want, key["partly"], rel):
            side = "high" if given > want else "low"
            return "partly", f"{given:g} is in the right range but too {side}."
        return "wrong", f"{given:g} is far off."

    def _interval(self, answer, key):
        given = [_as_number(a) for a in _as_list(answer)]
        if len(given) != 2 or None in given:
            return "wrong", f"expected two numbers (start, end), got {answer!r}."
        lo, hi = sorted(given)
        want = sorted(float(v) for v in key["answer"])
        ok = [self._close(g, w, key["right"], False) for g, w in zip((lo, hi), want)]
        if all(ok):
            return "right", f"({lo:g}, {hi:g}) is right."
        if any(ok) or all(self._close(g, w, key["partly"], False) for g, w in zip((lo, hi), want)):
            return "partly", f"({lo:g}, {hi:g}): one end is off."
        return "wrong", f"({lo:g}, {hi:g}) is far off."
