"""usfkit.pagecheck counts what a reader should not wade through, on constructed pages."""
from usfkit import pagecheck


def page(*outputs: str, extra: str = "") -> str:
    return "<html><body>" + extra + "".join(f'<div class="cell_output"><div class="output {o}</div></div>'
                                            for o in outputs) + "</body></html>"


def stream(text: str) -> str:
    return f'stream highlight"><div class="highlight"><pre>{text}</pre></div>'


def table(*cells: str) -> str:
    return 'text_html"><table><tr>' + "".join(f"<td>{c}</td>" for c in cells) + "</tr></table>"


def test_a_clean_page_counts_nothing():
    n, _ = pagecheck.count(page(stream("AUROC 91.3 %"), table("91.30", "1.2e-07", "USFlow")))
    assert n["outputs"] == 2 and all(n[k] == 0 for k in pagecheck.LIMITS)


def test_each_fault_is_counted_with_an_example():
    prose = "This sentence is long prose that should have been written as Markdown rather than printed " * 3
    n, seen = pagecheck.count(page(
        stream("43 of 47 present in /tmp/pytest-1/data"), stream('Downloading: "https://x/y.pth"'),
        stream("!" * 80), stream(prose), stream(" 40%|####      | 4/10 [00:01<00:02, 3.1it/s]"),
        table("99.279449", "4.768848e-07", "{'blocks': 8}", "0.5"),
        extra='<div class="cell tag_injected-parameters"></div>'))
    assert (n["paths"], n["noise"], n["prose"], n["progress"], n["raw"], n["params"]) == (1, 2, 1, 1, 3, 1)
    assert seen["paths"].startswith("43 of 47") and seen["raw"] == "99.279449"


def test_nested_divs_stay_inside_their_output_block():
    html = page('text_html"><div><div>x</div></div><table><tr><td>1.234567</td></tr></table>')
    html += '<div><table><tr><td>9.876543</td></tr></table></div>'  # outside any output: not a cell output
    n, _ = pagecheck.count(html)
    assert n["outputs"] == 1 and n["raw"] == 1


def test_check_reports_pages_over_their_limits_and_cdn_maths(tmp_path):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "index.html").write_text("")
    (tmp_path / "intro.html").write_text('<script src="https://cdn.example/mathjax/tex-chtml.js"></script>')
    (tmp_path / "chapters" / "01_a.html").write_text(page(stream("/root/x")))
    (tmp_path / "chapters" / "02_b.html").write_text(page(stream("fine")))
    counts, problems = pagecheck.check(tmp_path)
    assert set(counts) == {"01_a.html", "02_b.html"}
    assert len(problems) == 2 and problems[0].startswith("01_a.html: paths 1") and "internet" in problems[1]
    (tmp_path / "intro.html").write_text('<script src="../_static/mathjax/tex-chtml.js"></script>')
    (tmp_path / "chapters" / "01_a.html").write_text(page(stream("fine")))
    assert pagecheck.check(tmp_path)[1] == [] and pagecheck.main([str(tmp_path)]) == 0


def test_no_built_book_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    assert pagecheck.main([str(tmp_path / "nowhere")]) == 2
    assert "no built book in" in capsys.readouterr().err
