"""The docs' math is MathML made at build time (tools/docs_hooks.py), so the tutorial pages
show formulas offline: no MathJax from a CDN. The built pages are checked too when `make
docs` has run (make test builds them first)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "tools" / "docs_hooks.py")
docs_hooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(docs_hooks)


def test_inline_and_display_math_become_mathml_and_code_stays():
    page = (
        "<p>so $\\partial L / \\partial z = p - y$ here</p>"
        "<p>$$\nz \\in \\mathbb{R}^K\n$$</p>"
        "<pre>$ mlplab train</pre><code>$x$</code><p>it costs $5 and $6</p>"
    )
    out = docs_hooks.render_math(page, "page.ipynb")
    assert out.count("<math") == 2
    assert 'display="inline"' in out and 'display="block"' in out
    assert "&#x02202;" in out  # the partial sign, as MathML writes it
    assert "<pre>$ mlplab train</pre><code>$x$</code>" in out  # code is left alone
    assert "it costs $5 and $6" in out  # prices are not math


@pytest.mark.parametrize(
    "tex, why", [("x^", "MissingSuperScriptOrSubscriptError"), ("\\sofmax z", "unknown \\\\sofmax")]
)
def test_tex_that_cannot_be_read_fails_the_build_naming_the_page(tex, why):
    with pytest.raises(ValueError, match=rf"^tutorials/03.ipynb: cannot render .*: {why}$"):
        docs_hooks.render_math(f"<p>${tex}$</p>", "tutorials/03.ipynb")


@pytest.mark.skipif(not (ROOT / "site").is_dir(), reason="make docs has not run")
def test_the_built_tutorials_hold_mathml_and_load_no_mathjax():
    page = (ROOT / "site" / "tutorials" / "06_softmax_cross_entropy.html").read_text()
    assert page.count("<math") >= 10
    assert re.findall(r"<script[^>]*src=\"https?://", page) == []  # nothing from a CDN
    text = re.sub(r"<(pre|code|script|style).*?</\1>", "", page, flags=re.S)
    assert "\\partial" not in text and "$$" not in text
