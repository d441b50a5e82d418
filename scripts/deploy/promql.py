"""PromQL helpers shared by check-promql (live) and check-dashboards (static).

Collects every PromQL expression of the Grafana dashboards, substitutes Grafana's
variables, and tokenises PromQL far enough to name the metrics and label names an
expression uses and to build its relaxed form (comparisons with a number removed, label
matchers other than job/instance dropped), which is what an alert or a filtered panel
returns data for on a healthy scorer. Python 3 standard library only.
"""

import json
import re
from pathlib import Path

# Grafana variables that may appear in dashboard expressions, and what they stand for
# when the expression is checked. `rate_window` replaces the interval variables.
def substitute(expr, rate_window):
    out = expr
    for var in ("__rate_interval", "__interval", "__range"):
        out = out.replace("${%s}" % var, rate_window).replace("$" + var, rate_window)
    out = re.sub(r"\$\{instance(?::\w+)?\}|\$instance\b|\[\[instance\]\]", ".*", out)
    left = re.findall(r"\$\{?\w+", out)
    if left:
        raise ValueError("unknown Grafana variable(s) %s in %r" % (sorted(set(left)), expr))
    return out


def dashboard_expressions(dashboard_dir):
    """Yield (where, expr, datasource) for every target and query variable of every dashboard."""
    for path in sorted(Path(dashboard_dir).glob("*.json")):
        dash = json.loads(path.read_text())
        for panel in walk_panels(dash.get("panels", [])):
            for t in panel.get("targets", []):
                where = "%s panel %r %s" % (path.name, panel.get("title", ""), t.get("refId", "?"))
                yield where, t.get("expr", ""), t.get("datasource", panel.get("datasource"))
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") != "query":
                continue
            q = var.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or "")
            m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_]\w*)\s*\)\s*", q, re.S)
            where = "%s variable %r" % (path.name, var.get("name"))
            if m:
                # The variable's values are this label of this selector: both must exist.
                yield where, "count by (%s) (%s)" % (m.group(2), m.group(1)), var.get("datasource")
            elif q.strip():
                yield where, q, var.get("datasource")


def walk_panels(panels):
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


# ---------------------------------------------------------------- tokenizer
TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<num>(?:0x[0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(?:ms|[smhdwy])?(?:\d+(?:ms|[smhdwy]))*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|==|!=|>=|<=|[-+*/%^<>=,(){}\[\]@])
""", re.X)

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "bool", "offset", "inf", "nan", "start", "end"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
COMPARISON = {"==", "!=", ">", "<", ">=", "<="}
KEEP_MATCHERS = {"job", "instance", "__name__"}


def tokenize(expr):
    pos, out = 0, []
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError("cannot tokenise %r at %r" % (expr, expr[pos:pos + 20]))
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def analyse(expr):
    """Return (metrics, label_names) that an expression selects on or groups by."""
    toks = tokenize(expr)
    metrics, label_names = set(), set()
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "ident" and text.lower() in GROUPING and nxt == "(":
            j = i + 2
            while j < len(toks) and toks[j][1] != ")":
                if toks[j][0] == "ident":
                    label_names.add(toks[j][1])
                j += 1
            i = j + 1
            continue
        if kind == "ident" and (nxt == "(" or (nxt or "").lower() in ("by", "without")):
            i += 1                                   # function or aggregation operator
            continue
        if kind == "ident" and text.lower() not in KEYWORDS:
            metrics.add(text)
        if text == "{":
            j = i + 1
            while j < len(toks) and toks[j][1] != "}":
                if toks[j][0] in ("ident", "str") and j + 2 < len(toks) and toks[j + 1][1] in ("=", "!=", "=~", "!~"):
                    name = toks[j][1].strip("\"'`")
                    label_names.add(name)
                    if name == "__name__" and toks[j + 1][1] == "=":
                        metrics.add(toks[j + 2][1][1:-1])
                    j += 3
                else:
                    j += 1
            i = j + 1
            continue
        if text == "[":                              # range or subquery: durations only
            while i < len(toks) and toks[i][1] != "]":
                i += 1
        i += 1
    label_names.discard("__name__")
    return metrics, label_names


def relax(expr):
    """The expression without `<cmp> number` filters and with only job/instance matchers."""
    toks = tokenize(expr)
    out, i = [], 0
    while i < len(toks):
        kind, text = toks[i]
        if text in COMPARISON:
            j = i + 1
            if j < len(toks) and toks[j][1].lower() == "bool":
                j += 1
            if j < len(toks) and toks[j][1] in ("-", "+"):
                j += 1
            if j < len(toks) and toks[j][0] == "num" and (j + 1 == len(toks) or toks[j + 1][1] in (")", "and", "or", "unless")):
                i = j + 1
                continue
        if text == "{":
            j, kept = i + 1, []
            while j < len(toks) and toks[j][1] != "}":
                if j + 2 < len(toks) and toks[j + 1][1] in ("=", "!=", "=~", "!~"):
                    if toks[j][1].strip("\"'`") in KEEP_MATCHERS:
                        kept.append(" ".join(t for _, t in toks[j:j + 3]))
                    j += 3
                else:
                    j += 1
            out.append("{" + ", ".join(kept) + "}")
            i = j + 1
            continue
        out.append(text)
        i += 1
    return " ".join(out)
