#!/usr/bin/env python3
"""Generate docs/API.md from the kernel-doc comments of include/troupe/*.h.

Usage: scripts/gen-api-doc.py > docs/API.md
Each `/** ... */` comment is printed with the declaration that follows it.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ORDER = ["troupe.h", "version.h", "error.h", "pid.h", "msg.h", "actor.h",
         "runtime.h", "metrics.h", "timer.h", "io.h", "process.h", "tcp.h",
         "framer.h"]


def defines_of(rest):
    """The #defines at the start of @rest: a macro ends at its line (or its
    continuation lines), not at a ';'. A run of #defines with no blank
    line between them is one block under one comment, each define on its
    own line with its trailing comment."""
    lines = rest.split("\n")
    out = []
    i = 0
    while i < len(lines) and lines[i].startswith("#define"):
        decl = lines[i]
        i += 1
        while decl.endswith("\\") and i < len(lines):
            decl = decl[:-1].rstrip() + " " + lines[i].strip()
            i += 1
        out.append(" ".join(decl.split()))
    if len(out) == 1:
        out[0] = re.sub(r"\s*/\*.*?\*/", "", out[0])
    return "\n".join(out)


def entries(text):
    for m in re.finditer(r"/\*\*(.*?)\*/[ \t]*\n?\s*", text, re.S):
        body = "\n".join(re.sub(r"^\s*\* ?", "", l)
                         for l in m.group(1).strip().splitlines())
        rest = text[m.end():]
        if rest.startswith("#define"):
            yield body.strip(), defines_of(rest)
            continue
        else:
            d = re.match(r"(.*?)(?:;|\{)", rest, re.S)
            if d is None:
                continue
            decl = d.group(1)
        # TR_FAM_BEGIN only quiets C++ -pedantic; it is not the API.
        decl = " ".join(decl.replace("TR_FAM_BEGIN", "").split())
        yield body.strip(), decl


def main():
    inc = os.path.join(ROOT, "include", "troupe")
    names = [n for n in ORDER if os.path.exists(os.path.join(inc, n))]
    names += sorted(n for n in os.listdir(inc) if n.endswith(".h") and n not in names)
    # The standard actors library (libtroupe-actors) after the runtime.
    act = os.path.join(inc, "actors")
    if os.path.isdir(act):
        names += sorted("actors/" + n for n in os.listdir(act) if n.endswith(".h"))
    # The distribution layer (libtroupe-net) last.
    net = os.path.join(inc, "net")
    if os.path.isdir(net):
        names += sorted("net/" + n for n in os.listdir(net) if n.endswith(".h"))
    out = ["# troupe API reference", "",
           "Generated from the comments in `include/troupe/*.h` by "
           "`scripts/gen-api-doc.py`; the headers are the source of truth.", ""]
    for n in names:
        text = open(os.path.join(inc, n)).read()
        head = re.search(r"/\*\n(.*?)\*/", text, re.S)
        out += ["## <troupe/%s>" % n, ""]
        if head:
            out += [re.sub(r"^\s*\* ?", "", l) for l in head.group(1).splitlines()]
            out.append("")
        for body, decl in entries(text):
            end = ";" if "(" in decl and not decl.startswith("#") else ""
            out += ["```c", decl + end, "```", "", body, ""]
    sys.stdout.write("\n".join(out).rstrip() + "\n")


main()
