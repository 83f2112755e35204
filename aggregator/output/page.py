"""index.html's inline style sheet and script: the page has no external asset (`indexes`).

The script adds the filter, the copy buttons and the OPML of the chosen feeds; without it
every feed is still listed with plain links.
"""

from __future__ import annotations

CSS = """\
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1b1f;--muted:#5d5d66;--line:#dcdce3;\
--card:#f6f6f9;--accent:#0b57d0;--ok:#137333}
@media (prefers-color-scheme:dark){:root{--bg:#121216;--fg:#e8e8ee;--muted:#a3a3ae;\
--line:#34343d;--card:#1c1c22;--accent:#8ab4f8;--ok:#81c995}}
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,\
"Segoe UI",Roboto,sans-serif}
main{max-width:52rem;margin:0 auto;padding:1rem}
h1{font-size:1.6rem;margin:.5rem 0}
h2{font-size:1.2rem;margin:1.5rem 0 .5rem;border-bottom:1px solid var(--line);\
padding-bottom:.25rem}
a{color:var(--accent)}
.muted,.meta{color:var(--muted)}
.meta{font-size:.875rem}
ol.headlines{padding-left:1.5rem}
ol.headlines li{margin:.35rem 0}
ul.feeds{list-style:none;margin:0;padding:0}
li.feed{display:flex;flex-wrap:wrap;align-items:baseline;justify-content:space-between;\
gap:.25rem 1rem;padding:.6rem .75rem;margin:.4rem 0;background:var(--card);\
border:1px solid var(--line);border-radius:.5rem}
.feed .name{font-weight:600;overflow-wrap:anywhere}
.formats{display:flex;flex-wrap:wrap;gap:.4rem}
.format{display:inline-flex;border:1px solid var(--line);border-radius:.4rem;overflow:hidden}
.format a{padding:.15rem .5rem;text-decoration:none}
.format button{font:inherit;font-size:.8rem;border:0;border-left:1px solid var(--line);\
background:transparent;color:var(--muted);padding:.15rem .5rem;cursor:pointer}
.format button.done{color:var(--ok)}
.filter{display:flex;gap:.5rem;align-items:center;flex-wrap:wrap;margin:.5rem 0}
.filter input{font:inherit;flex:1 1 12rem;padding:.4rem .6rem;border:1px solid var(--line);\
border-radius:.4rem;background:var(--bg);color:var(--fg)}
.pick{margin:0 .25rem 0 0;width:1.1rem;height:1.1rem;align-self:center}
.feed .about{flex:1 1 12rem}
.picker{display:flex;gap:.5rem;align-items:center;flex-wrap:wrap;margin:.5rem 0}
.picker button,.group-pick{font:inherit;font-size:.875rem;padding:.2rem .6rem;\
border:1px solid var(--line);border-radius:.4rem;background:var(--card);color:var(--fg);\
cursor:pointer}
.picker button:disabled{opacity:.5;cursor:default}
.group-pick{margin-left:.75rem;vertical-align:middle}
.group-opml{margin-left:.75rem;font-size:.875rem;font-weight:400}
@media (max-width:30rem){main{padding:.6rem}li.feed{display:block}\
.pick{float:left;margin-top:.2rem}.formats{margin-top:.3rem}}
"""

SCRIPT = """\
(function () {
  "use strict";
  var form = document.getElementById("filter");
  var input = document.getElementById("q");
  var shown = document.getElementById("shown");
  var feeds = Array.prototype.slice.call(document.querySelectorAll("li.feed"));
  var groups = Array.prototype.slice.call(document.querySelectorAll("section.group"));
  // Each word typed must start a word of the feed's title (folded as the page wrote
  // data-name: lower case, accents off, split at anything but letters and digits), or all
  // that is typed, run together, must start its slug ("bothub-ai" finds bothub-ai).
  function words(text) {
    return text.toLowerCase().normalize("NFKD").replace(/[\\u0300-\\u036f]/g, "")
      .split(/[^\\p{L}\\p{N}]+/u).filter(Boolean);
  }
  function apply() {
    var typed = words(input.value);
    var joined = typed.join("");
    var count = 0;
    feeds.forEach(function (li) {
      var name = " " + li.getAttribute("data-name");
      var hit = typed.every(function (w) { return name.indexOf(" " + w) >= 0; }) ||
        li.getAttribute("data-slug").indexOf(joined) === 0;
      li.hidden = !hit;
      if (hit) { count += 1; }
    });
    groups.forEach(function (g) { g.hidden = !g.querySelector("li.feed:not([hidden])"); });
    shown.textContent = count === feeds.length ? "" : count + " of " + feeds.length + " feeds";
  }
  var query = /[?&#]q=([^&]*)/.exec(location.search + location.hash);
  if (query) { input.value = decodeURIComponent(query[1].replace(/\\+/g, " ")); }
  form.hidden = false;
  form.addEventListener("submit", function (e) { e.preventDefault(); });
  input.addEventListener("input", apply);
  apply();
  function copied(button, ok) {
    button.textContent = ok ? "copied" : "press Ctrl+C";
    button.classList.toggle("done", ok);
    setTimeout(function () { button.textContent = "copy"; button.classList.remove("done"); },
      1500);
  }
  function fallback(url, button) {
    var area = document.createElement("textarea");
    area.value = url;
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (err) { ok = false; }
    document.body.removeChild(area);
    copied(button, ok);
  }
  picker();
  Array.prototype.forEach.call(document.querySelectorAll("button.copy"), function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var url = button.previousElementSibling.href;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(url).then(function () { copied(button, true); },
          function () { fallback(url, button); });
      } else {
        fallback(url, button);
      }
    });
  });
  // Choose feeds, take one OPML of them: made here, from the page, like index.opml.
  function picker() {
    var bar = document.getElementById("picker");
    var make = document.getElementById("opml-chosen");
    var clear = document.getElementById("clear-chosen");
    var boxes = feeds.map(function (li) { return li.querySelector("input.pick"); });
    function update() {
      var n = boxes.filter(function (b) { return b.checked; }).length;
      make.disabled = n === 0;
      make.textContent = "OPML of " + n + (n === 1 ? " chosen feed" : " chosen feeds");
    }
    boxes.forEach(function (b) { b.hidden = false; b.addEventListener("change", update); });
    groups.forEach(function (g) {
      var button = g.querySelector("button.group-pick");
      button.hidden = false;
      button.addEventListener("click", function () {
        g.querySelectorAll("li.feed:not([hidden]) input.pick").forEach(function (b) {
          b.checked = true;
        });
        update();
      });
    });
    clear.addEventListener("click", function () {
      boxes.forEach(function (b) { b.checked = false; });
      update();
    });
    make.addEventListener("click", function () {
      var doc = document.implementation.createDocument(null, "opml", null);
      var root = doc.documentElement;
      root.setAttribute("version", "2.0");
      var head = root.appendChild(doc.createElement("head"));
      head.appendChild(doc.createElement("title")).textContent = bar.getAttribute("data-title");
      var body = root.appendChild(doc.createElement("body"));
      groups.forEach(function (g) {
        var chosen = Array.prototype.filter.call(g.querySelectorAll("li.feed"), function (li) {
          return li.querySelector("input.pick").checked;
        });
        if (!chosen.length) { return; }
        var folder = body.appendChild(doc.createElement("outline"));
        folder.setAttribute("text", g.querySelector("h2").firstChild.textContent);
        chosen.forEach(function (li) {
          var outline = folder.appendChild(doc.createElement("outline"));
          var name = li.getAttribute("data-opml-text");
          outline.setAttribute("type", "rss");
          outline.setAttribute("text", name);
          outline.setAttribute("title", name);
          outline.setAttribute("xmlUrl", li.querySelector(".format a").href);
          outline.setAttribute("htmlUrl", bar.getAttribute("data-home"));
        });
      });
      var text = '<?xml version="1.0" encoding="UTF-8"?>\\n' +
        new XMLSerializer().serializeToString(doc) + "\\n";
      var link = document.createElement("a");
      link.href = URL.createObjectURL(new Blob([text], { type: "text/x-opml" }));
      link.download = "feeds.opml";
      document.body.appendChild(link);
      link.click();
      document.body.removeChild(link);
      setTimeout(function () { URL.revokeObjectURL(link.href); }, 10000);
    });
    bar.hidden = false;
    update();
  }
})();
"""
