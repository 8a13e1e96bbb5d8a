"""The claims ledger: published numbers checked against the results that regenerate them.

``config/claims.yaml`` lists each claim with its source, protocol, tolerance and result cell (format:
``config/claims.schema.yaml``). :func:`load_ledger` validates it against the schema and the config before any job
runs; :func:`claim_files` names the result files a check reads; :func:`check_claims` reads their cells and gives
``results/report/claims.csv``'s rows. A claim's value is one result cell, or a cell relative to a baseline cell (their
ratio or difference: a phenomenon, such as one model's epoch being 5x faster than another's). A claim is compared only
when its protocol can hold: its study is on, every ``comparable_when`` setting has its value (or one of its values) in
the config (a list setting: holds one of them), and its value was reached; otherwise its status is :data:`NOT_COMPARABLE`, with the reason in ``note``.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import yaml
from jsonschema import Draft202012Validator, validators

PASS, FAIL, NOT_COMPARABLE = "pass", "fail", "not comparable at this scale"
COLUMNS = ["claim", "published", "regenerated", "tolerance", "status", "id", "unit", "check", "source", "protocol",
           "note"]
_FIELD = re.compile(r"\{([A-Za-z0-9_.*]+)\}")
_MISSING = object()
_REDUCE = {"max": pd.Series.max, "min": pd.Series.min, "mean": pd.Series.mean}


def _with_defaults(validator_class):
    """A validator that fills in the schema's defaults (as snakemake.utils.validate does for the config)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        for name, subschema in properties.items():
            if isinstance(instance, dict) and "default" in subschema:
                instance.setdefault(name, subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def config_value(config: Mapping, key: str):
    """The value of a dotted config key (``ssd.eval.iou_threshold``; a list element by its index,
    ``optimus.devices.0``), or ``_MISSING``."""
    value = config
    for part in key.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def load_ledger(path: str | Path, schema_path: str | Path, config: Mapping) -> list[dict]:
    """The claims of ``path``, validated (schema, unique ids) and with defaults filled in (a baseline's file is the
    result's unless it names its own, of the same study). A ``comparable_when`` key or a file field of a study that is
    on must name a config key: a typo is an error naming the claim, not a claim that is silently never compared."""
    ledger = yaml.safe_load(Path(path).read_text())
    schema = yaml.safe_load(Path(schema_path).read_text())
    errors = sorted(_with_defaults(Draft202012Validator)(schema).iter_errors(ledger), key=lambda e: list(e.path))
    if errors:
        where = list(errors[0].path)
        raise ValueError(f"{path}: {_naming(ledger, where)}{'/'.join(map(str, where))}: {errors[0].message}")
    claims = ledger["claims"]
    seen = set()
    for claim in claims:
        if claim["id"] in seen:
            raise ValueError(f"{path}: claim id {claim['id']!r} appears twice")
        seen.add(claim["id"])
        if "baseline" in claim["result"]:
            baseline = claim["result"]["baseline"]
            baseline.setdefault("file", claim["result"]["file"])
            if _study(baseline["file"]) != study_of(claim):
                raise ValueError(f"{path}: claim {claim['id']}: the baseline's file {baseline['file']} is not of the "
                                 f"{study_of(claim)} study, whose results the claim reads")
        for key in settings_keys(claim):
            if key.split(".")[0] in config and config_value(config, key) is _MISSING:
                raise ValueError(f"{path}: claim {claim['id']}: config key {key!r} does not exist")
    return claims


def _naming(ledger: Mapping, where: list) -> str:
    """"claim <id>: " for a schema error inside a claim that has an id, else ""."""
    claim = ledger["claims"][where[1]] if where[:1] == ["claims"] and len(where) > 1 else None
    return f"claim {claim['id']}: " if isinstance(claim, dict) and "id" in claim else ""


def cells_of(claim: Mapping) -> list[Mapping]:
    """The result cells a claim reads: its result's, and its baseline's when it has one."""
    result = claim["result"]
    return [result, result["baseline"]] if "baseline" in result else [result]


def settings_keys(claim: Mapping) -> list[str]:
    """The dotted config keys a claim's check reads: its ``comparable_when`` and its cells' file fields."""
    fields = (k.removesuffix(".*") for cell in cells_of(claim) for k in _FIELD.findall(cell["file"]))
    return list(dict.fromkeys([*claim["comparable_when"], *fields]))


def settings_read(claims: Iterable[Mapping], config: Mapping) -> dict:
    """{dotted key: value} of every config key the claims' checks read that the config has (the check rule's
    params: editing one of them rechecks, editing anything else does not)."""
    keys = dict.fromkeys(k for claim in claims for k in settings_keys(claim))
    return {k: v for k in keys if (v := config_value(config, k)) is not _MISSING}


def _study(file: str) -> str:
    return file.split("/")[1]


def study_of(claim: Mapping) -> str:
    """The study whose results regenerate a claim: results/<study>/…"""
    return _study(claim["result"]["file"])


def cell_files(cell: Mapping, settings: Mapping) -> list[str]:
    """The files of a result cell, its file fields filled from ``settings`` (:func:`settings_read`; ``{key.*}``: one
    file per element of the list)."""
    files = [cell["file"]]
    for key in _FIELD.findall(cell["file"]):
        value = settings[key.removesuffix(".*")]
        values = value if key.endswith(".*") else [value]
        files = [f.replace(f"{{{key}}}", str(v)) for f in files for v in values]
    return files


def claim_files(claim: Mapping, settings: Mapping) -> list[str]:
    """The result files of a claim, its result's and its baseline's, each once (:func:`cell_files`)."""
    return list(dict.fromkeys(f for cell in cells_of(claim) for f in cell_files(cell, settings)))


def _is_one_of(cells: pd.Series, wanted) -> pd.Series:
    """Whether each cell is ``wanted`` or, for a list, one of its values (a number by value: 1.0e-3 matches a CSV's
    0.001)."""
    numbers, words = pd.to_numeric(cells, errors="coerce"), cells.astype(str)
    hits = pd.Series(False, index=cells.index)
    for value in wanted if isinstance(wanted, list) else [wanted]:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            hits |= np.isclose(numbers, value, rtol=1e-9, atol=0)
        else:
            hits |= words == str(value)
    return hits


def _matching(frame: pd.DataFrame, cell: Mapping) -> pd.Series:
    """The cells of ``cell["column"]`` in the rows that match every column of ``cell["row"]``."""
    rows = frame
    for column, wanted in cell["row"].items():
        rows = rows[_is_one_of(rows[column], wanted)]
    return rows[cell["column"]]


def regenerate(cell: Mapping, frames: Iterable[pd.DataFrame]) -> float:
    """A result cell's value from its files' frames (see the ledger's ``result``); NaN when it was not reached
    (``seconds_to`` a threshold no run reached)."""
    frames = list(frames)
    if cell["reduce"] == "seconds_to":
        times = [float(f.loc[f[cell["column"]] >= cell["threshold"], "wall_seconds"].min()) for f in frames]
        times = [t for t in times if not math.isnan(t)]
        value = min(times) if times else math.nan
    else:
        cells = pd.concat([_matching(f, cell) for f in frames]).astype(float)
        if cell["reduce"] == "one" and len(cells) != 1:
            raise ValueError(f"{cell['file']}: {len(cells)} cells match {cell['row']} in column "
                             f"{cell['column']!r}, expected exactly one")
        value = float(cells.iloc[0] if cell["reduce"] == "one" else _REDUCE[cell["reduce"]](cells))
    return value * cell["factor"]


def _unreached(cell: Mapping) -> str:
    """Why a cell's value is NaN, in words."""
    if cell["reduce"] == "seconds_to":
        return f"{cell['column']} never reached {cell['threshold']}"
    return f"{cell['column']} has no value"


def regenerate_result(result: Mapping, settings: Mapping, frames: Mapping[str, pd.DataFrame]) -> tuple[float, str]:
    """A claim's regenerated value, from its files' frames (path -> frame): its result cell's value, or that combined
    with its baseline's (``ratio``: value / baseline; ``difference``: value - baseline); and, when it is NaN, why."""
    value = regenerate(result, (frames[f] for f in cell_files(result, settings)))
    if math.isnan(value):
        return value, _unreached(result)
    if "baseline" not in result:
        return value, ""
    baseline = result["baseline"]
    base = regenerate(baseline, (frames[f] for f in cell_files(baseline, settings)))
    if math.isnan(base):
        return base, f"the baseline's {_unreached(baseline)}"
    if result["combine"] == "difference":
        return value - base, ""
    if base == 0:
        return math.nan, f"the baseline's {baseline['column']} is 0, so there is no ratio"
    return value / base, ""


def allowance(claim: Mapping) -> float:
    """The tolerance in the claim's unit."""
    tolerance = claim["tolerance"]
    return tolerance["absolute"] if "absolute" in tolerance else tolerance["relative"] * abs(claim["published"])


def tolerance_text(claim: Mapping) -> str:
    """The tolerance as the scorecard prints it: ±0.005, ≥ −0 (a lower bound), ±3%."""
    tolerance = claim["tolerance"]
    amount = (f"{tolerance['absolute']:g}" if "absolute" in tolerance else f"{100 * tolerance['relative']:g}%")
    return {"within": f"±{amount}", "at_least": f"≥ −{amount}", "at_most": f"≤ +{amount}"}[claim["check"]]


def passes(claim: Mapping, regenerated: float) -> bool:
    gap, allowed = regenerated - claim["published"], allowance(claim) * (1 + 1e-12)
    return {"within": abs(gap) <= allowed, "at_least": gap >= -allowed, "at_most": gap <= allowed}[claim["check"]]


def _not_met(claim: Mapping, settings: Mapping) -> list[str]:
    """The ``comparable_when`` settings the config does not have, in words."""
    unmet = []
    for key, wanted in claim["comparable_when"].items():
        allowed = wanted if isinstance(wanted, list) else [wanted]
        value = settings.get(key, _MISSING)
        if value is _MISSING or not _holds(value, allowed):
            unmet.append(f"{key} is {'absent' if value is _MISSING else value!r}, the protocol needs "
                         f"{_one_of(allowed)}")
    return unmet


def _holds(value, allowed: list) -> bool:
    """A setting is one of the values allowed, or a list (compress.deep.networks) that holds one of them."""
    if isinstance(value, list):
        return any(v in allowed for v in value)
    return value in allowed


def _one_of(values: list) -> str:
    """'full'; 'embedded' or 'full'; 1, 2 or 3."""
    words = [repr(v) for v in values]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def check_claim(claim: Mapping, settings: Mapping, frames: Mapping[str, pd.DataFrame] | None) -> dict:
    """One row of claims.csv. ``frames``: the claim's result files by path, or None when its study is off."""
    row = {"claim": claim["claim"], "published": claim["published"], "regenerated": math.nan,
           "tolerance": tolerance_text(claim), "id": claim["id"], "unit": claim["unit"], "check": claim["check"],
           "source": claim["source"], "protocol": claim["protocol"]}
    if frames is None:
        return {**row, "status": NOT_COMPARABLE, "note": f"the {study_of(claim)} study is not in this config"}
    unmet = _not_met(claim, settings)
    try:
        regenerated, unreached = regenerate_result(claim["result"], settings, frames)
    except ValueError:
        # A claim whose protocol does not hold here may name cells this config does not make (a sparsity the
        # rehearsal does not prune to): it is not comparable, with no value. Where it holds, the cells must exist.
        if not unmet:
            raise
        regenerated, unreached = math.nan, ""
    row["regenerated"] = regenerated
    if unmet:
        return {**row, "status": NOT_COMPARABLE, "note": "; ".join(unmet)}
    if math.isnan(regenerated):
        return {**row, "status": NOT_COMPARABLE, "note": unreached}
    return {**row, "status": PASS if passes(claim, regenerated) else FAIL, "note": ""}


def check_claims(claims: Iterable[Mapping], settings: Mapping, studies: Iterable[str],
                 frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """claims.csv: every claim's row (:func:`check_claim`), its frames taken from ``frames`` (path -> frame) when
    its study is among ``studies`` (those on)."""
    studies = set(studies)
    rows = [check_claim(c, settings, frames if study_of(c) in studies else None) for c in claims]
    return pd.DataFrame(rows, columns=COLUMNS)


def scorecard_values(table: pd.DataFrame) -> dict[str, str]:
    """The scorecard's macros: how many claims passed, failed and could not be compared, of how many."""
    counts = table.status.value_counts()
    return {"ClaimsTotal": str(len(table)), "ClaimsPassed": str(counts.get(PASS, 0)),
            "ClaimsFailed": str(counts.get(FAIL, 0)), "ClaimsNotComparable": str(counts.get(NOT_COMPARABLE, 0))}


def failures(table: pd.DataFrame) -> str:
    """The failed claims in words, one a line, for the error of a strict check."""
    failed = table[table.status == FAIL]
    return "\n".join(f"  {r.id}: published {r.published:g} {r.unit}, regenerated {r.regenerated:g} "
                     f"(tolerance {r.tolerance}; {r.source})" for r in failed.itertuples())
