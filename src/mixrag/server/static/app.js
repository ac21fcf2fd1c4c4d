// The mixrag page: ask (streamed over Server-Sent Events), show the mixture, manage documents.
// Plain browser JavaScript, no build step. Every API call goes through api(), which adds
// the bearer token when the server asks for one (kept in sessionStorage for this tab).
"use strict";

const $ = (id) => document.getElementById(id);
const CITE_MIN = 0.25; // cite every passage with at least this posterior (and always the best); Answer.cited
const CITE_LOW = 0.5; // a cited passage below this posterior is marked as an uncertain source
const NOT_FOUND = "Not found in the documents."; // mixrag.support.NOT_FOUND
const ALTERNATIVES = 3; // other answers the page asks for: how close the runner-up is

let token = sessionStorage.getItem("mixrag-token") || "";

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (token) headers.set("Authorization", `Bearer ${token}`);
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    $("token-bar").hidden = false;
    throw new Error("this server needs a token: enter it above");
  }
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body.detail) detail = body.detail;
    } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return response;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmt(p) {
  return p === null || p === undefined ? "–" : p.toFixed(3);
}

// -- info -------------------------------------------------------------------

// K of each mode when none is chosen (the server's defaults: concat reads fewer passages)
let kByMode = {};

function followModeK() {
  const k = kByMode[$("mode").value];
  if (k) $("k").value = String(k);
}

async function loadInfo() {
  const info = await (await api("/v1/info")).json();
  const k = $("k");
  k.replaceChildren();
  for (let i = 1; i <= info.limits.max_k; i++) {
    const option = el("option", "", String(i));
    option.value = String(i);
    k.append(option);
  }
  $("mode").value = info.defaults.mode;
  kByMode = info.defaults.k_by_mode || {};
  k.value = String(kByMode[info.defaults.mode] || info.defaults.k);
  $("method").value = info.defaults.method;
  const idx = info.index;
  $("stats").textContent =
    `${idx.documents} documents · ${idx.passages} passages · generator ${info.generator.model}`;
  $("upload-file").accept = info.extensions.map((e) => `${e},${e}.gz`).join(",");
}

// -- passages ---------------------------------------------------------------

function bar(kind, label) {
  const row = document.createDocumentFragment();
  row.append(el("span", "bar-label", label));
  const track = el("div", `bar ${kind}`);
  track.append(el("span"));
  row.append(track);
  row.append(el("span", `bar-value ${kind}-value`, "–"));
  return row;
}

function setBar(card, kind, p) {
  const fill = card.querySelector(`.bar.${kind} > span`);
  fill.style.width = `${Math.max(0, Math.min(1, p || 0)) * 100}%`;
  card.querySelector(`.${kind}-value`).textContent = fmt(p);
}

function renderPassages(hits) {
  const box = $("passages");
  box.replaceChildren();
  for (const hit of hits) {
    const card = el("article", "passage-card");
    card.id = `passage-${hit.rank}`;
    const head = el("div", "card-head");
    head.append(el("span", "card-rank", `[${hit.rank}]`));
    head.append(el("span", "card-title", hit.passage.title || "(untitled)"));
    const source = hit.passage.source.split("/").pop();
    const where = hit.passage.location;
    head.append(el("span", "card-source", where ? `${source}, ${where}` : source));
    card.append(head);
    const bars = el("div", "bars");
    bars.append(bar("prior", "prior p(z|x)"), bar("posterior", "posterior p(z|x,y)"));
    card.append(bars);
    const text = el("p", "card-text", hit.passage.text);
    text.title = "click to expand";
    text.addEventListener("click", () => text.classList.toggle("open"));
    card.append(text);
    setBar(card, "prior", hit.prior);
    if (hit.bm25 !== null && hit.bm25 !== undefined) {
      bars.title = `score ${hit.score.toFixed(3)}: dense ${hit.dense.toFixed(3)}, BM25 ${hit.bm25.toFixed(3)} of the best match`;
    }
    box.append(card);
  }
  $("legend").hidden = hits.length === 0;
}

function flash(rank) {
  const card = $(`passage-${rank}`);
  if (!card) return;
  card.scrollIntoView({ behavior: "smooth", block: "center" });
  card.classList.add("flash");
  setTimeout(() => card.classList.remove("flash"), 1200);
}

// -- answer -----------------------------------------------------------------

function citeLinks(cited) {
  return cited.map((c) => {
    const low = c.posterior < CITE_LOW;
    const link = el("a", low ? "cite low" : "cite", `[${c.rank}]`);
    link.href = `#passage-${c.rank}`;
    link.title = `posterior p(z|x,y) = ${fmt(c.posterior)}` +
      (low ? ": low, this passage may not be the answer's source" : "");
    link.addEventListener("click", (event) => { event.preventDefault(); flash(c.rank); });
    return link;
  });
}

// "supported by [n] (p = 0.97)" or "not supported by the indexed documents (p = 0.12)",
// naming the relevance when no passage is about the question
function showSupport(answer, cited) {
  const box = $("answer-support");
  const p = answer.probability === null ? "–" : answer.probability.toPrecision(2);
  box.replaceChildren();
  box.className = answer.supported === false ? "answer-support unsupported" : "answer-support";
  const offTopic =
    answer.mode !== "closed-book" && answer.min_relevance != null &&
    (answer.relevance == null || answer.relevance < answer.min_relevance);
  if (answer.supported === false && offTopic) {
    const r = answer.relevance == null ? "" : `: relevance ${answer.relevance.toFixed(2)} < ${answer.min_relevance}`;
    box.append(`not supported by the indexed documents (no passage is about the question${r}; p = ${p})`);
  } else if (answer.supported === false) {
    box.append(`not supported by the indexed documents (p = ${p})`);
  } else if (answer.mode === "closed-book") {
    box.append(`answered from the model alone, not the documents (p = ${p})`);
  } else if (cited.length === 0) {
    box.append(`supported by the indexed documents (p = ${p})`);
  } else {
    box.append("supported by ", ...citeLinks(cited), ` (p = ${p})`);
  }
  if (answer.gain !== null && answer.gain !== undefined && answer.mode !== "closed-book") {
    box.title = `gain over closed-book: log p(y|x) − log p(y|x, no passage) = ${answer.gain.toFixed(2)} nats`;
  }
}

// "other answers: 1902 (p = 0.22) · the mill (p = 0.05)": what the mixture ranked below.
function showOthers(answer) {
  const box = $("answer-others");
  const others = answer.alternatives || [];
  box.textContent = others.length
    ? "other answers: " + others.map((a) => `${a.answer} (p = ${a.probability.toPrecision(2)})`).join(" · ")
    : "";
  box.hidden = others.length === 0;
}

function showAnswer(answer) {
  const text = $("answer-text");
  const weight = (c) => (c.posterior === null ? c.prior : c.posterior);
  const ranked = [...answer.passages].sort((a, b) => weight(b) - weight(a));
  const cited = ranked.filter((c, i) => c.posterior !== null && (i === 0 || c.posterior >= CITE_MIN));
  if (answer.supported === false) {
    // the best guess stays available on request
    text.replaceChildren(document.createTextNode(NOT_FOUND));
    const guess = el("details", "guess");
    guess.append(el("summary", "", "best guess"), answer.answer || "(empty answer)", ...citeLinks(cited));
    text.append(guess);
  } else {
    text.replaceChildren(document.createTextNode(answer.answer || "(empty answer)"));
    text.append(...citeLinks(cited));
  }
  text.dataset.state = "final";
  showSupport(answer, cited);
  showOthers(answer);
  for (const c of answer.passages) {
    const card = $(`passage-${c.rank}`);
    if (!card) continue;
    setBar(card, "prior", c.prior);
    setBar(card, "posterior", c.posterior);
    card.classList.toggle("cited", cited.includes(c));
    card.classList.toggle("low-posterior", cited.includes(c) && c.posterior < CITE_LOW);
  }
  const t = answer.timings || {};
  const parts = [`log p(y|x) = ${answer.logprob === null ? "–" : answer.logprob.toFixed(3)}`];
  if (answer.probability !== null) parts.push(`p = ${answer.probability.toPrecision(3)}`);
  parts.push(answer.mode);
  if (t.total !== undefined) parts.push(`${t.total.toFixed(2)} s`);
  $("answer-meta").textContent = parts.join(" · ");
  $("answer-status").textContent = "";
}

function showToken(event) {
  const text = $("answer-text");
  text.textContent = event.text;
  text.dataset.state = event.provisional ? "provisional" : "streaming";
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  $("answer-status").textContent = "";
  if ($("answer-text").dataset.state !== "final") $("answer-text").dataset.state = "empty";
}

// Server-Sent Events over fetch (EventSource cannot POST): blocks separated by a blank line.
async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { name, data: JSON.parse(data.join("\n")) };
    }
  }
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  const button = $("ask-button");
  button.disabled = true;
  $("answer-panel").hidden = false;
  $("error").hidden = true;
  $("answer-text").textContent = "";
  $("answer-text").dataset.state = "empty";
  $("answer-meta").textContent = "";
  $("answer-support").textContent = "";
  $("answer-others").hidden = true;
  $("answer-status").textContent = "retrieving…";
  const body = {
    question,
    mode: $("mode").value,
    k: Number($("k").value),
    method: $("method").value,
    alternatives: ALTERNATIVES,
    stream: true,
  };
  try {
    const response = await api("/v1/ask", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(body),
    });
    for await (const { name, data } of events(response)) {
      if (name === "passages") {
        renderPassages(data.passages);
        $("answer-status").textContent = data.provisional
          ? "decoding (provisional: the mixture decides at the end)…"
          : "decoding…";
      } else if (name === "token") {
        showToken(data);
      } else if (name === "answer") {
        showAnswer(data);
      } else if (name === "error") {
        showError(data.detail);
      }
    }
  } catch (err) {
    showError(err.message);
  } finally {
    button.disabled = false;
  }
}

// -- documents --------------------------------------------------------------

async function loadDocuments() {
  const { documents } = await (await api("/v1/documents")).json();
  const list = $("documents");
  list.replaceChildren();
  for (const doc of documents) {
    const item = el("li");
    const name = el("span", "doc-name", doc.name);
    name.title = doc.path;
    item.append(name, el("span", "doc-count", `${doc.passages} p.`));
    const remove = el("button", "", "×");
    remove.type = "button";
    remove.title = `remove ${doc.name} from the index`;
    remove.addEventListener("click", () => removeDocument(doc));
    item.append(remove);
    list.append(item);
  }
}

function uploadStatus(message, bad = false) {
  const status = $("upload-status");
  status.textContent = message;
  status.classList.toggle("bad", bad);
}

async function afterChange(response) {
  const result = await response.json();
  const r = result.report;
  uploadStatus(`${result.document.name}: ${result.status}, +${r.passages_added} / -${r.passages_removed} passages`);
  await Promise.all([loadDocuments(), loadInfo()]);
}

async function upload(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) { uploadStatus("choose a file first", true); return; }
  const form = new FormData();
  form.append("file", file);
  uploadStatus(`indexing ${file.name}…`);
  try {
    await afterChange(await api("/v1/documents", { method: "POST", body: form }));
    $("upload-form").reset();
  } catch (err) {
    uploadStatus(err.message, true);
  }
}

async function addText(event) {
  event.preventDefault();
  const payload = { title: $("text-title").value, text: $("text-body").value };
  uploadStatus(`indexing "${payload.title}"…`);
  try {
    await afterChange(await api("/v1/documents", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    }));
    $("text-form").reset();
  } catch (err) {
    uploadStatus(err.message, true);
  }
}

async function removeDocument(doc) {
  if (!confirm(`Remove ${doc.name} (${doc.passages} passages) from the index?`)) return;
  try {
    await api(`/v1/documents/${doc.id}`, { method: "DELETE" });
    uploadStatus(`${doc.name}: removed`);
    await Promise.all([loadDocuments(), loadInfo()]);
  } catch (err) {
    uploadStatus(err.message, true);
  }
}

// -- start ------------------------------------------------------------------

async function start() {
  try {
    await loadInfo();
    await loadDocuments();
    $("token-bar").hidden = true;
  } catch (err) {
    $("stats").textContent = err.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("ask-form").addEventListener("submit", ask);
  $("mode").addEventListener("change", followModeK);
  $("upload-form").addEventListener("submit", upload);
  $("text-form").addEventListener("submit", addText);
  $("token").value = token;
  $("token-save").addEventListener("click", () => {
    token = $("token").value.trim();
    sessionStorage.setItem("mixrag-token", token);
    start();
  });
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  start();
});
