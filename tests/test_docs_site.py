"""The built site works opened from disk: site/index.html in chromium, through file://, follows
every link to a real page, with its pictures, alt texts, math and folded solutions.

`make test` builds the site first (`make docs`); a plain pytest without it skips these.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "site"
LESSONS = sorted(p.stem for p in (ROOT / "tutorials").glob("[0-9]*.py"))
DEFAULT_ALT = "No description has been provided for this image"

pytestmark = pytest.mark.skipif(not (SITE / "index.html").is_file(), reason="make docs has not run")

# What each page reports about itself, read in the browser.
PAGE_FACTS = """() => ({
  title: document.title,
  article: !!document.querySelector('article.md-content__inner'),
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  images: [...document.querySelectorAll('article img')].map(i => ({
    src: i.currentSrc.slice(0, 60), loaded: i.complete && i.naturalWidth > 0, alt: i.alt})),
  ids: [...document.querySelectorAll('[id]')].map(e => e.id),
  math: document.querySelectorAll('article math').length,
  headings: [...document.querySelectorAll('article h2')]
    .map(h => h.textContent.replace('¶', '').trim()),
  solutions: document.querySelectorAll('details.solution').length,
  openSolutions: document.querySelectorAll('details.solution[open]').length,
})"""


def _inside_site(url: str) -> Path | None:
    """The site file a file:// link points to, or None for a link that leaves the site."""
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    path = Path(unquote(parsed.path))
    try:
        path.relative_to(SITE)
    except ValueError:
        return None
    return path


@pytest.fixture(scope="module")
def crawl(browser):
    """Every page reachable from site/index.html through its links, and what each holds."""
    page = browser.new_page()
    pages: dict[Path, dict] = {}
    anchors: list[tuple[Path, str, Path]] = []  # (page linking, anchor, page linked)
    queue = [SITE / "index.html"]
    try:
        while queue:
            path = queue.pop()
            if path in pages:
                continue
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            facts = page.evaluate(PAGE_FACTS)
            pages[path] = facts
            for link in facts["links"]:
                url, fragment = urldefrag(link)
                target = _inside_site(url)
                if target is None or target.suffix in (".ipynb", ".png", ".xml", ".gz"):
                    continue  # downloads and assets are not pages
                if fragment:
                    anchors.append((path, unquote(fragment), target))
                queue.append(target)
    finally:
        page.close()
    return pages, anchors


def test_every_link_from_the_front_page_reaches_a_real_page(crawl):
    pages, _ = crawl
    for path, facts in pages.items():
        assert path.is_file() and path.suffix == ".html", f"a link leads to {path}"
        assert facts["article"], f"{path.relative_to(SITE)} is not a page of the site"
    visited = {p.relative_to(SITE).as_posix() for p in pages}
    for lesson in LESSONS:
        assert f"tutorials/{lesson}.html" in visited
    for must in (
        "tutorials/index.html",
        "explanations/concepts.html",
        "how-to/lab.html",
        "reference/cli.html",
        "benchmarks.html",
        "development.html",
    ):
        assert must in visited
    assert len(pages) >= 35


def test_every_picture_loads_and_has_real_alt_text(crawl):
    pages, _ = crawl
    lesson_pictures = 0
    for path, facts in pages.items():
        for image in facts["images"]:
            where = f"{path.relative_to(SITE)}: {image['src']}"
            assert image["loaded"], f"{where} did not load"
            assert image["alt"].strip() and image["alt"] != DEFAULT_ALT, f"{where} has no alt text"
        if path.parent.name == "tutorials" and path.stem in LESSONS:
            assert len(facts["images"]) >= 2, path.name
            lesson_pictures += len(facts["images"])
    assert lesson_pictures >= 2 * len(LESSONS)


def test_every_anchor_a_link_names_exists_on_its_page(crawl):
    pages, anchors = crawl
    assert anchors, "no link names a section"
    for source, anchor, target in anchors:
        assert anchor in pages[target]["ids"], f"{source.name} links to {target.name}#{anchor}"


def test_lessons_show_math_and_fold_their_solutions(crawl):
    pages, _ = crawl
    for lesson in LESSONS:
        facts = pages[SITE / "tutorials" / f"{lesson}.html"]
        assert facts["solutions"] >= 2 and facts["openSolutions"] == 0, lesson
    assert pages[SITE / "tutorials" / "06_softmax_cross_entropy.html"]["math"] >= 10
    assert pages[SITE / "tutorials" / "02_autograd.html"]["math"] >= 3


def test_the_front_page_starts_with_the_lessons(crawl):
    pages, _ = crawl
    front = pages[SITE / "index.html"]
    assert front["headings"][:2] == ["Learn", "Use it"]
    lessons_linked = [link for link in front["links"] if "/tutorials/0" in link]
    assert lessons_linked[0].endswith("tutorials/01_tensors_to_network.html")
