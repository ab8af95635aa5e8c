// vop search page: every text from the server goes into the page as text (textContent), never as HTML.
"use strict";
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function call(url, options) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function clock(seconds) {  // 75.5 -> "1:15.5"
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${(seconds - 60 * minutes).toFixed(1).padStart(4, "0")}`;
}

function card(hit, onSimilar) {
  const box = el("article", {class: "card" + (hit.truth ? " truth" : ""), "data-rank": hit.rank});
  const head = el("div", {class: "head"});
  head.append(el("span", {class: "id"}, `${hit.rank}. ${hit.video_id || hit.id}`),
              el("span", {class: "score"}, hit.score.toFixed(4)));
  box.append(head);
  if (hit.truth) box.append(el("span", {class: "badge"}, "ground truth"));
  if (hit.caption) box.append(el("p", {class: "caption"}, hit.caption));
  if (hit.thumb_url) box.append(el("img", {class: "strip", src: hit.thumb_url, alt: `frames of ${hit.id}`, loading: "lazy"}));
  const moment = hit.start !== null && hit.start !== undefined;
  if (moment) box.append(el("p", {class: "span"}, `${clock(hit.start)} - ${clock(hit.end)}`));
  // A moment plays from its start (media fragment #t=start,end: the browser seeks there and pauses at its end).
  const src = moment && hit.video_url ? `${hit.video_url}#t=${hit.start},${hit.end}` : hit.video_url;
  if (hit.video_url) box.append(el("video", {src: src, controls: "", preload: "metadata"}));
  if (hit.row !== null && hit.row !== undefined) {
    const button = el("button", {type: "button", class: "similar"}, "similar");
    button.addEventListener("click", () => onSimilar(hit.row));
    box.append(button);
  }
  return box;
}

function showVideos(target, title, hits) {
  target.replaceChildren(el("h2", {}, title));
  const grid = el("div", {class: "cards"});
  for (const hit of hits) grid.append(card(hit, similar));
  target.append(grid);
}

function showCaptions(target, title, hits) {
  target.replaceChildren(el("h2", {}, title));
  const list = el("ol", {class: "captions"});
  for (const hit of hits) {
    const item = el("li", {}, `${hit.caption}  (${hit.score.toFixed(4)}${hit.video_id ? ", " + hit.video_id : ""})`);
    if (hit.truth) item.append(" ", el("span", {class: "badge"}, "its caption"));
    list.append(item);
  }
  target.append(list);
}

// Results per search: the server's topk until the user changes it (the server checks the limit too).
function kParam() { return $("k").value ? `k=${encodeURIComponent($("k").value)}` : ""; }

async function searchText(text) {
  status(`searching for "${text}"...`);
  $("similar").replaceChildren();
  try {
    const answer = await call(`/api/search?q=${encodeURIComponent(text)}&${kParam()}`);
    showVideos($("results"), `videos for "${answer.query}"`, answer.hits);
    status(`${answer.hits.length} videos`);
  } catch (err) { status(err.message, true); }
}

async function searchVideo(file) {
  status(`searching with ${file.name}...`);
  $("similar").replaceChildren();
  const form = new FormData();
  form.append("video", file);
  try {
    const answer = await call(`/api/search?${kParam()}`, {method: "POST", body: form});
    showCaptions($("results"), `captions for ${answer.query}`, answer.hits);
    status(`${answer.hits.length} captions`);
  } catch (err) { status(err.message, true); }
}

async function similar(row) {
  status("finding similar...");
  try {
    const answer = await call(`/api/similar?row=${row}&${kParam()}`);
    const target = $("similar");
    showCaptions(target, `captions for ${answer.query}`, answer.hits);
    const more = el("div");
    showVideos(more, `videos like ${answer.query}`, answer.videos);
    target.append(...more.childNodes);
    target.scrollIntoView({behavior: "smooth"});
    status(`similar to ${answer.query}`);
  } catch (err) { status(err.message, true); }
}

$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("q").value.trim();
  if (!text) return;
  history.replaceState(null, "", `/?q=${encodeURIComponent(text)}&${kParam()}`);
  searchText(text);
});
$("upload").addEventListener("change", () => { if ($("upload").files.length) searchVideo($("upload").files[0]); });
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files.length) searchVideo(event.dataTransfer.files[0]);
});

(async () => {
  try {
    const health = await call("/api/health");
    const rows = health.moments ? `${health.videos} moments` : `${health.videos} videos`;  // a moment gallery's rows
    $("gallery").textContent = `${rows}, ${health.captions} captions; ` +
      `model ${health.encoder.model}, method ${health.encoder.method}`;
    $("k").max = health.max_topk;
    if (!$("k").value) $("k").value = health.topk;
  } catch (err) { status(err.message, true); }
  const params = new URLSearchParams(location.search);
  if (params.get("k")) $("k").value = params.get("k");
  if (params.get("q")) { $("q").value = params.get("q"); searchText(params.get("q")); }
})();
