"""report.md as a self-contained report.html: the subset of Markdown the report writes
(headings, tables, lists, quotes, paragraphs, code, bold, italics, images), with every plot's
SVG embedded, so the page opens anywhere without a network or the plot files."""
import html
import pathlib
import re

STYLE = """body{font:14px/1.45 system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:12.5px}td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}
th{background:#f3f3f3}code{background:#f3f3f3;padding:0 3px}blockquote{border-left:3px solid #aaa;margin:.5em 0;padding:0 .8em;color:#555}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;margin-top:1.6em}svg{max-width:100%;height:auto}"""


def inline(text):
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"(?<![\w*])\*([^*]+)\*(?![\w*])", r"<i>\1</i>", text)
    return text


def cells(line):
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [p.strip().replace("\\|", "|") for p in parts]


def image(match, base):
    alt, src = match.group(1), match.group(2)
    svg_path = (base / src).with_suffix(".svg")
    if svg_path.exists():
        svg = svg_path.read_text()
        svg = svg[svg.find("<svg"):]  # drop the XML prologue
        return f'<figure>{svg}<figcaption>{html.escape(alt)}</figcaption></figure>'
    return f"<p>[{html.escape(alt)}: {html.escape(src)} is missing]</p>"


def convert(markdown, base, title):
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{STYLE}</style></head><body>"]
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in cells(rows[0])) + "</tr>")
            for row in rows[2:]:
                out.append("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in cells(row)) + "</tr>")
            out.append("</table>")
        elif line.startswith("- "):
            out.append("<ul>")
            while i < len(lines) and lines[i].startswith("- "):
                out.append(f"<li>{inline(lines[i][2:])}</li>")
                i += 1
            out.append("</ul>")
        elif line.startswith(">"):
            out.append(f"<blockquote>{inline(line.lstrip('> '))}</blockquote>")
            i += 1
        elif re.match(r"!\[", line):
            out.append(re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", lambda m: image(m, base), line))
            i += 1
        else:
            paragraph = []
            while i < len(lines) and lines[i].strip() and not re.match(r"[#|>]|- |!\[", lines[i]):
                paragraph.append(lines[i])
                i += 1
            out.append(f"<p>{inline(' '.join(paragraph))}</p>")
    out.append("</body></html>")
    return "\n".join(out)


def write(markdown_path, title):
    markdown_path = pathlib.Path(markdown_path)
    target = markdown_path.with_suffix(".html")
    target.write_text(convert(markdown_path.read_text(), markdown_path.parent, title))
    return target
