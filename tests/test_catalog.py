"""The Snakemake workflow catalog's usage files: .snakemake-workflow-catalog.yml says truthfully how the workflow
runs, and config/README.md, the configuration reference the catalog shows, documents exactly the keys of
config/schema.yaml (the schema is the truth) and every file shipped in config/.

Key tables in config/README.md are the markdown tables whose first header cell is ``key``; their first column is a
key in backticks, written as its full path from the top of the config (``optimus.train``), or from a shared block of
the schema's ``$defs`` (``<train>.epochs``). ``<label>`` (any name in angle brackets) after the first segment stands
for a key the user chooses (``additionalProperties``), and ``[]`` for the items of a list."""
import re

import pytest
import yaml

from conftest import ROOT

CATALOG = ROOT / ".snakemake-workflow-catalog.yml"
CONFIG_README = ROOT / "config" / "README.md"
SCHEMA = ROOT / "config" / "schema.yaml"


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def readme_text() -> str:
    return CONFIG_README.read_text()


# ---- config/README.md's key tables -----------------------------------------------------------------------------
def cells(line: str) -> list[str]:
    """The cells of a markdown table row; an escaped pipe (``\\|``) stays inside its cell."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def key_rows(text: str) -> dict[str, list[str]]:
    """Key path -> the cells of its row, over every table whose first header cell is ``key``. A row whose first
    cell is not one backticked key fails: a table that documents keys must name them unambiguously."""
    rows: dict[str, list[str]] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("|") and cells(lines[i])[0] == "key":
            i += 2  # header and separator
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                row = cells(lines[i])
                match = re.fullmatch(r"`([^`]+)`", row[0])
                if not match:
                    raise ValueError(f"config/README.md: a key table row without a `key`: {lines[i]!r}")
                if match.group(1) in rows:
                    raise ValueError(f"config/README.md documents {match.group(1)} twice")
                rows[match.group(1)] = row
                i += 1
        else:
            i += 1
    return rows


# ---- the schema, in the same notation ----------------------------------------------------------------------------
def is_object(node: dict) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in node


def schema_keys(schema: dict) -> set[str]:
    """Every key of the schema in the README's notation, with ``<*>`` for a user-chosen key; shared blocks
    (``$defs``) once each, keys that refer to one not descended into."""
    keys: set[str] = set()

    def walk(node: dict, path: str) -> None:
        for name, child in node.get("properties", {}).items():
            p = f"{path}.{name}" if path else name
            keys.add(p)
            if "$ref" in child:
                continue
            if is_object(child):
                walk(child, p)
                extra = child.get("additionalProperties")
                if isinstance(extra, dict):
                    keys.add(f"{p}.<*>")
                    walk(extra, f"{p}.<*>")
            items = child.get("items")
            if isinstance(items, dict) and "properties" in items:
                walk(items, f"{p}[]")

    walk(schema, "")
    for name, block in schema.get("$defs", {}).items():
        keys.add(f"<{name}>")
        walk(block, f"<{name}>")
    return keys


def normalise(path: str) -> str:
    """``devices.<label>.pack`` -> ``devices.<*>.pack``; a leading ``<block>`` (a shared block) stays."""
    head, *rest = path.split(".")
    return ".".join([head] + [re.sub(r"^<[^>]+>$", "<*>", seg) for seg in rest])


def resolve(schema: dict, path: str) -> tuple[dict, bool]:
    """The schema node of a documented key, and whether its parent requires it. KeyError when it does not exist."""
    head, *rest = path.split(".")
    block = re.fullmatch(r"<([^>]+)>", head)
    if block:
        node, required = schema["$defs"][block.group(1)], False
    else:
        node, required = walk_into(schema, schema, head)
    for seg in rest:
        node, required = walk_into(schema, node, seg)
    return node, required


def walk_into(schema: dict, node: dict, seg: str) -> tuple[dict, bool]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].split("/")[-1]]
    if re.fullmatch(r"<[^>]+>", seg):
        extra = node.get("additionalProperties")
        if not isinstance(extra, dict):
            raise KeyError(seg)
        return extra, False
    name, items = (seg[:-2], True) if seg.endswith("[]") else (seg, False)
    child = node.get("properties", {})[name]
    required = name in node.get("required", [])
    if items:
        child = child["items"]
        while "$ref" in child:
            child = schema["$defs"][child["$ref"].split("/")[-1]]
        required = False
    return child, required


def undocumented(schema: dict, rows: dict) -> list[str]:
    documented = {normalise(p) for p in rows}
    return sorted(schema_keys(schema) - documented)


def unknown(schema: dict, rows: dict) -> list[str]:
    bad = []
    for path in rows:
        try:
            resolve(schema, path)
        except (KeyError, TypeError):
            bad.append(path)
    return bad


def missing_section_keys(schema: dict, text: str) -> list[str]:
    """Top-level keys and the keys of each top-level section (a study, peak, devices, data) that config/README.md
    names neither as a key-table row nor as the backticked full path."""
    rows = {normalise(p) for p in key_rows(text)}
    wanted = []
    for name, node in schema["properties"].items():
        wanted.append(name)
        wanted += [f"{name}.{key}" for key in node.get("properties", {})]
        if isinstance(node.get("additionalProperties"), dict):
            wanted.append(f"{name}.<*>")
    named = set(re.findall(r"`([^`]+)`", text))
    return [key for key in wanted if key not in rows and key not in named]


def token(value) -> str:
    """A scalar as the README writes it (YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def wrong_constraints(schema: dict, rows: dict) -> list[str]:
    """Rows that leave out an allowed value, a bound or the pattern of the schema (in the allowed-values cell), or
    the required mark or a scalar default (in the default cell)."""
    bad = []
    for path, row in rows.items():
        node, required = resolve(schema, path)
        if len(row) < 4:
            bad.append(f"{path}: fewer than 4 cells")
            continue
        allowed, default = row[2], row[3]
        wants = [(allowed, token(v)) for v in node.get("enum", [])]
        wants += [(allowed, token(node[b])) for b in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
                  if b in node]
        if "pattern" in node:
            wants.append((allowed, node["pattern"]))
        if required:
            wants.append((default, "required"))
        elif "default" in node and not isinstance(node["default"], (dict, list)):
            wants.append((default, token(node["default"])))
        missing = [want for cell, want in wants if want not in cell]
        if missing:
            bad.append(f"{path}: {missing}")
    return bad


def unmentioned_config_files(text: str, names: list[str]) -> list[str]:
    return [name for name in names if f"config/{name}" not in text and f"`{name}`" not in text]


def config_files() -> list[str]:
    return sorted(p.name for p in (ROOT / "config").iterdir() if p.is_file() and p.name != "README.md")


# ---- .snakemake-workflow-catalog.yml ----------------------------------------------------------------------------
DEPLOYMENT = ("conda", "apptainer", "apptainer+conda")


def catalog_problems(settings) -> list[str]:
    """What keeps the catalog from reading the file as its usage instructions."""
    if not isinstance(settings, dict) or not isinstance(settings.get("usage"), dict):
        return ["no `usage` mapping at the top"]
    usage, problems = settings["usage"], []
    flags = usage.get("mandatory-flags")
    if not isinstance(flags, dict):
        problems.append("usage.mandatory-flags is not a mapping")
    else:
        if not isinstance(flags.get("desc"), str) or not flags["desc"].strip():
            problems.append("usage.mandatory-flags.desc is not a non-empty string")
        value = flags.get("flags")
        if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(f, str) for f in value))):
            problems.append("usage.mandatory-flags.flags is neither a string nor a list of strings")
    stack = usage.get("software-stack-deployment")
    if not isinstance(stack, dict):
        problems.append("usage.software-stack-deployment is not a mapping")
    else:
        for method in DEPLOYMENT:
            if not isinstance(stack.get(method), bool):
                problems.append(f"usage.software-stack-deployment.{method} is not a boolean")
        if not any(stack.get(method) is True for method in DEPLOYMENT):
            problems.append("no software deployment method is true")
    if not isinstance(usage.get("report"), bool):
        problems.append("usage.report is not a boolean")
    return problems


def rule_blocks() -> dict[str, str]:
    """Each rule of rules/*.smk and the Snakefile, by name: its text up to the next rule."""
    blocks = {}
    for path in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        parts = re.split(r"^rule (\w+):", path.read_text(), flags=re.M)
        blocks.update({parts[i]: parts[i + 1] for i in range(1, len(parts), 2)})
    return blocks


# ---- the tests ---------------------------------------------------------------------------------------------------
def test_catalog_yml_has_the_catalogs_keys():
    settings = yaml.safe_load(CATALOG.read_text())
    assert catalog_problems(settings) == []


def test_catalog_yml_is_truthful():
    usage = yaml.safe_load(CATALOG.read_text())["usage"]
    stack = usage["software-stack-deployment"]
    rules = rule_blocks()
    assert rules, "no rules found"
    # conda: every rule that runs code (all but target rules such as `all`) declares the environment, which exists
    runs_code = {name: body for name, body in rules.items()
                 if re.search(r"^\s+(script|shell|run|notebook|wrapper):", body, re.M)}
    assert len(runs_code) > 50
    without_conda = sorted(name for name, body in runs_code.items() if not re.search(r"^\s+conda:", body, re.M))
    assert stack["conda"] == (not without_conda and (ROOT / "envs" / "dlperf.yaml").is_file()), without_conda
    assert "CONDA_ENV = \"../envs/dlperf.yaml\"" in (ROOT / "rules" / "common.smk").read_text()
    # apptainer: only with a container image named somewhere
    workflow_text = (ROOT / "Snakefile").read_text() + "".join(rules.values())
    has_container = re.search(r"^\s*(container|containerized):", workflow_text, re.M) is not None
    assert stack["apptainer"] == has_container and stack["apptainer+conda"] == (has_container and stack["conda"])
    # report: figures and tables are marked for `snakemake --report`, with their captions present
    captions = re.findall(r'caption="\.\./(report/captions/[^"]+)"', workflow_text)
    assert usage["report"] == ("report(" in workflow_text)
    assert all((ROOT / c).is_file() for c in captions), [c for c in captions if not (ROOT / c).is_file()]


def test_config_readme_documents_every_top_level_and_section_key():
    assert missing_section_keys(load_schema(), readme_text()) == []


def test_config_readme_documents_every_schema_key():
    assert undocumented(load_schema(), key_rows(readme_text())) == []


def test_every_key_the_config_readme_documents_exists_in_the_schema():
    rows = key_rows(readme_text())
    assert len(rows) > 100
    assert unknown(load_schema(), rows) == []


def test_config_readme_gives_the_schemas_constraints():
    assert wrong_constraints(load_schema(), key_rows(readme_text())) == []


def test_config_readme_mentions_every_config_file():
    names = config_files()
    assert {"config.yaml", "full.yaml", "rehearsal.yaml", "schema.yaml"} <= set(names)
    assert unmentioned_config_files(readme_text(), names) == []


def test_config_readme_says_how_to_override_and_that_bad_config_fails_early():
    text = readme_text()
    for needed in ("--configfile", "--config", "local_path", "mirror", "before any job runs"):
        assert needed in text, needed


# ---- the checks can fail --------------------------------------------------------------------------------------
def test_the_checks_catch_a_missing_an_invented_and_a_misdescribed_key():
    schema, text = load_schema(), readme_text()
    rows = key_rows(text)
    # a key dropped from the tables and from the text
    gone = "\n".join(line for line in text.splitlines() if not line.startswith("| `threads` |"))
    assert "threads" in missing_section_keys(schema, gone.replace("`threads`", "threads"))
    assert "threads" in undocumented(schema, key_rows(gone))
    # a study key the schema lacks
    assert unknown(schema, {**rows, "optimus.epochz": ["`optimus.epochz`"]}) == ["optimus.epochz"]
    assert unknown(schema, {**rows, "<train>.optimizer.lamb": ["x"]}) == ["<train>.optimizer.lamb"]
    # a key the schema gains
    grown = {**schema, "properties": {**schema["properties"], "new_study": {"type": "object", "properties":
                                                                             {"knob": {"type": "integer"}}}}}
    assert missing_section_keys(grown, text) == ["new_study", "new_study.knob"]
    assert undocumented(grown, rows) == ["new_study", "new_study.knob"]
    # an allowed value left out, a wrong bound
    bad = {**rows, "device": ["`device`", "choice", "`cpu`, `cuda`", "`auto`", "where"],
           "threads": ["`threads`", "integer", "1 to 64", "`2`", "threads"]}
    assert sorted(p.split(":")[0] for p in wrong_constraints(schema, bad)) == ["device", "threads"]


def test_the_checks_catch_a_broken_catalog_file_and_an_unmentioned_config_file():
    good = yaml.safe_load(CATALOG.read_text())
    assert catalog_problems({"usage": {**good["usage"], "report": "yes"}}) == ["usage.report is not a boolean"]
    no_stack = {"usage": {**good["usage"], "software-stack-deployment": {m: False for m in DEPLOYMENT}}}
    assert catalog_problems(no_stack) == ["no software deployment method is true"]
    assert catalog_problems({"usage": {**good["usage"], "mandatory-flags": {"desc": "", "flags": 3}}}) == [
        "usage.mandatory-flags.desc is not a non-empty string",
        "usage.mandatory-flags.flags is neither a string nor a list of strings"]
    assert catalog_problems(None) == ["no `usage` mapping at the top"]
    assert unmentioned_config_files("config/config.yaml only", ["config.yaml", "extra.yaml"]) == ["extra.yaml"]


def test_a_key_table_row_without_a_key_is_an_error():
    with pytest.raises(ValueError, match="without a `key`"):
        key_rows("| key | type |\n|:--|:--|\n| threads | integer |\n")
    with pytest.raises(ValueError, match="twice"):
        key_rows("| key | type |\n|:--|:--|\n| `threads` | integer |\n| `threads` | integer |\n")
