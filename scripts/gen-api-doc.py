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


def entries(text):
    for m in re.finditer(r"/\*\*(.*?)\*/\s*(.*?)(?:;|\{)", text, re.S):
        body = "\n".join(re.sub(r"^\s*\* ?", "", l)
                         for l in m.group(1).strip().splitlines())
        # TR_FAM_BEGIN only quiets C++ -pedantic; it is not the API.
        decl = " ".join(m.group(2).replace("TR_FAM_BEGIN", "").split())
        yield body.strip(), decl


def main():
    inc = os.path.join(ROOT, "include", "troupe")
    names = [n for n in ORDER if os.path.exists(os.path.join(inc, n))]
    names += sorted(n for n in os.listdir(inc) if n.endswith(".h") and n not in names)
    # The standard actors library (libtroupe-actors) after the runtime.
    act = os.path.join(inc, "actors")
    if os.path.isdir(act):
        names += sorted("actors/" + n for n in os.listdir(act) if n.endswith(".h"))
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
            out += ["```c", decl + ";" if "(" in decl else decl, "```", "", body, ""]
    sys.stdout.write("\n".join(out).rstrip() + "\n")


main()
