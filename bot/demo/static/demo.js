// carebot demo: draws the three chats from /api/state, keeps them live from /api/events
// (server-sent events), and sends what a person does as small JSON requests. No framework,
// no build step, nothing from the internet.
"use strict";

const S = {
  state: null,
  chats: new Map(), // chat id -> Map(message id -> message)
  keyboards: new Map(), // chat id -> reply keyboard
  topics: new Map(), // thread id -> name
  current: { customer: null, master: null, topic: "" },
  replyTo: { customer: null, group: null, master: null },
  clockOffset: 0, // demo now - this browser's now, in ms
  tz: "UTC",
};
const $ = (selector, root = document) => root.querySelector(selector);
const PANES = ["customer", "group", "master"];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// ---- talking to the demo ------------------------------------------------------------------

async function api(path, body, form) {
  const options = { method: body || form ? "POST" : "GET", headers: {} };
  if (form) options.body = form;
  else if (body) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = {};
  try { data = await response.json(); } catch (e) { data = {}; }
  if (!response.ok) {
    showError(data.error || `the demo answered ${response.status}`);
    throw new Error(data.error || String(response.status));
  }
  return data;
}

let errorTimer = null;
function showError(text) {
  const box = $("#error");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { box.hidden = true; }, 6000);
}

function chatOf(kind) {
  if (kind === "group") return S.state ? S.state.group.id : null;
  return S.current[kind];
}

function paneOfChat(chat) {
  return PANES.filter((kind) => chatOf(kind) === chat);
}

// ---- Telegram HTML, drawn safely ----------------------------------------------------------
// The text is parsed by the browser into a detached document (nothing in it runs), and only
// Telegram's own tags are rebuilt from it; everything else becomes plain text.

const TAGS = {
  B: "b", STRONG: "b", I: "i", EM: "i", U: "u", INS: "u", S: "s", STRIKE: "s", DEL: "s",
  CODE: "code", PRE: "pre", BLOCKQUOTE: "blockquote", A: "a", "TG-SPOILER": "spoiler",
  SPAN: "span", "TG-EMOJI": "emoji",
};

function telegramHtml(text, kind) {
  const parsed = new DOMParser().parseFromString(`<!doctype html><body>${text}</body>`, "text/html");
  const out = document.createDocumentFragment();
  copyNodes(parsed.body, out, kind);
  return out;
}

function copyNodes(from, into, kind) {
  for (const node of from.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) {
      into.append(document.createTextNode(node.nodeValue));
      continue;
    }
    if (node.nodeType !== Node.ELEMENT_NODE) continue;
    const tag = TAGS[node.tagName];
    let made = null;
    if (tag === "a") {
      const href = node.getAttribute("href") || "";
      if (/^(https?:|tg:|mailto:)/i.test(href)) {
        made = el("a", { href, target: "_blank", rel: "noopener noreferrer" });
        if (startLink(href)) {
          made.addEventListener("click", (event) => {
            event.preventDefault();
            openLink(kind, href);
          });
        }
      } else {
        made = el("span");
      }
    } else if (tag === "spoiler" || (tag === "span" && node.classList.contains("tg-spoiler"))) {
      made = el("span", { class: "spoiler", tabindex: "0", role: "button", "aria-label": "Spoiler: show" });
      const reveal = () => made.classList.add("shown");
      made.addEventListener("click", reveal);
      made.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") reveal(); });
    } else if (tag && tag !== "span" && tag !== "emoji") {
      made = el(tag);
    }
    if (made) {
      copyNodes(node, made, kind);
      into.append(made);
    } else {
      copyNodes(node, into, kind);
    }
  }
}

function startLink(url) {
  const bot = S.state ? S.state.bot : "";
  const match = /^https:\/\/t\.me\/(\w+)\?start=([\w-]{1,64})$/.exec(url);
  return match && match[1] === bot;
}

async function openLink(kind, url) {
  if (kind === "group") {
    showError("A t.me link to the bot opens in a customer's or a master's chat: copy it there.");
    return;
  }
  await api(`/api/chats/${chatOf(kind)}/link`, { url });
}

// ---- messages -----------------------------------------------------------------------------

function timeText(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat("en-GB", {
    timeZone: S.tz, day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  }).format(new Date(iso));
}

function messageView(m, kind) {
  if (m.topic) {
    return el("div", { class: "msg service", "data-id": m.id, text: `Topic “${m.topic}” created` });
  }
  const box = el("div", { class: `msg${m.bot ? "" : " me"}${m.deleted ? " deleted" : ""}`, "data-id": m.id });
  if (kind === "group") box.append(el("div", { class: "author", text: m.bot ? "carebot" : m.author }));
  if (m.reply_to) box.append(el("div", { class: "quote", text: `↩ ${m.reply_to.text || "…"}` }));
  if (m.deleted) {
    box.append(el("div", { class: "body", text: "This message was deleted" }));
    return box;
  }
  if (m.photo) box.append(el("img", { class: "photo", src: m.photo, alt: m.text ? `Photo: ${m.text}` : "Photo" }));
  if (m.document) {
    box.append(el("a", { href: m.document.url, download: m.document.name, text: `📄 ${m.document.name}` }));
  }
  if (m.media) box.append(el("div", { class: "media", text: `[${m.media}]` }));
  if (m.contact) box.append(el("div", { class: "media", text: `📞 contact shared: ${m.contact}` }));
  if (m.invoice) {
    const amount = (m.invoice.amount / 100).toFixed(2);
    box.append(el("div", { class: "invoice", text: `🧾 ${m.invoice.title}: ${m.invoice.description} — ${amount} ${m.invoice.currency}` }));
  }
  if (m.text) {
    const body = el("div", { class: "body" });
    if (m.html) body.append(telegramHtml(m.text, kind));
    else body.textContent = m.text;
    box.append(body);
  }
  if (m.buttons && m.buttons.length) {
    const keyboard = el("div", { class: "inline-keyboard", role: "group", "aria-label": "Buttons under the message" });
    for (const row of m.buttons) {
      const line = el("div", { class: "row" });
      for (const button of row) line.append(inlineButton(button, m, kind));
      keyboard.append(line);
    }
    box.append(keyboard);
  }
  const meta = el("div", { class: "meta" });
  if (m.edited) meta.append(el("span", { text: "edited" }));
  meta.append(el("time", { datetime: m.at || null, text: timeText(m.at) }));
  meta.append(el("button", {
    type: "button", text: "Reply", "aria-label": "Reply to this message",
    onclick: () => startReply(kind, m),
  }));
  box.append(meta);
  return box;
}

function inlineButton(button, message, kind) {
  if (button.url) {
    const link = el("a", { class: "button", href: button.url, target: "_blank", rel: "noopener noreferrer", text: `${button.text} ↗` });
    if (startLink(button.url)) {
      link.addEventListener("click", (event) => { event.preventDefault(); openLink(kind, button.url); });
    }
    return link;
  }
  return el("button", {
    type: "button", text: button.text,
    onclick: () => api(`/api/chats/${message.chat}/press`, { message_id: message.id, data: button.data || "" }),
  });
}

function startReply(kind, m) {
  S.replyTo[kind] = m.id;
  const pane = $(`#pane-${kind}`);
  const bar = $(".replying", pane);
  $("span", bar).textContent = `Replying to: ${(m.text || "").slice(0, 80) || "a message"}`;
  bar.hidden = false;
  $("textarea", pane).focus();
}

function cancelReply(kind) {
  S.replyTo[kind] = null;
  $(`#pane-${kind} .replying`).hidden = true;
}

function visible(kind, m) {
  if (kind !== "group" || !S.state.group.topics_on) return true;
  const topic = S.current.topic;
  if (!topic) return !m.thread;
  return String(m.thread) === topic;
}

function drawPane(kind) {
  const pane = $(`#pane-${kind}`);
  const list = $(".messages", pane);
  const chat = chatOf(kind);
  list.replaceChildren();
  const messages = [...(S.chats.get(chat) || new Map()).values()].sort((a, b) => a.id - b.id);
  for (const m of messages) if (visible(kind, m)) list.append(messageView(m, kind));
  list.scrollTop = list.scrollHeight;
  drawKeyboard(kind);
}

function drawKeyboard(kind) {
  const box = $(`#pane-${kind} .keyboard`);
  const keyboard = S.keyboards.get(chatOf(kind));
  box.replaceChildren();
  box.hidden = !keyboard;
  if (!keyboard) return;
  for (const row of keyboard.rows) {
    const line = el("div", { class: "row" });
    for (const button of row) {
      line.append(el("button", {
        type: "button", text: button.text,
        onclick: () => {
          const chat = chatOf(kind);
          if (button.request_contact) return api(`/api/chats/${chat}/contact`, {});
          return api(`/api/chats/${chat}/text`, { text: button.text });
        },
      }));
    }
    box.append(line);
  }
}

function upsert(m) {
  if (!S.chats.has(m.chat)) S.chats.set(m.chat, new Map());
  const chat = S.chats.get(m.chat);
  const known = chat.has(m.id);
  chat.set(m.id, m);
  for (const kind of paneOfChat(m.chat)) {
    const list = $(`#pane-${kind} .messages`);
    const old = $(`.msg[data-id="${m.id}"]`, list);
    if (!visible(kind, m)) continue;
    const view = messageView(m, kind);
    if (old) { old.replaceWith(view); continue; }
    const last = list.lastElementChild;
    if (!known && (!last || Number(last.dataset.id) < m.id)) list.append(view);
    else { drawPane(kind); continue; }
    list.scrollTop = list.scrollHeight;
  }
  if (m.chat !== S.current.customer && S.state && S.state.customers.some((c) => c.id === m.chat)) {
    markUnread(m.chat);
  }
}

function markUnread(chat) {
  const option = $(`#customer-select option[value="${chat}"]`);
  if (option && !option.textContent.startsWith("• ")) option.textContent = `• ${option.textContent}`;
}

// ---- the state and its changes ------------------------------------------------------------

async function load() {
  const state = await api("/api/state");
  S.state = state;
  S.tz = state.tz;
  $("#business").textContent = state.business;
  $("#staff-name").textContent = `writing as ${state.group.staff}`;
  S.chats = new Map();
  for (const [chat, messages] of Object.entries(state.chats)) {
    S.chats.set(Number(chat), new Map(messages.map((m) => [m.id, m])));
  }
  S.keyboards = new Map(Object.entries(state.keyboards).map(([k, v]) => [Number(k), v]));
  S.topics = new Map(Object.entries(state.group.topics).map(([k, v]) => [k, v]));
  fillCustomers(state.customers);
  fillMasters(state.masters);
  fillTopics();
  $("#topics-on").checked = state.group.topics_on;
  setClock(state.clock);
  for (const kind of PANES) drawPane(kind);
}

function fillCustomers(customers) {
  S.state.customers = customers;
  const select = $("#customer-select");
  select.replaceChildren(...customers.map((c) => el("option", { value: c.id, text: `${c.name} (${c.lang})` })));
  if (!customers.some((c) => c.id === S.current.customer)) S.current.customer = customers.length ? customers[0].id : null;
  select.value = S.current.customer;
}

function fillMasters(masters) {
  const select = $("#master-select");
  select.replaceChildren(...masters.map((m) => el("option", { value: m.id, text: m.name })));
  if (!masters.some((m) => m.id === S.current.master)) S.current.master = masters.length ? masters[0].id : null;
  select.value = S.current.master;
}

function fillTopics() {
  const on = S.state.group.topics_on;
  $(".topic-pick").hidden = !on;
  const select = $("#topic-select");
  const options = [el("option", { value: "", text: "General" })];
  for (const [thread, name] of S.topics) options.push(el("option", { value: thread, text: name }));
  select.replaceChildren(...options);
  if (S.current.topic && !S.topics.has(S.current.topic)) S.current.topic = "";
  select.value = S.current.topic;
}

function handle(event) {
  switch (event.type) {
    case "message": upsert(event.message); break;
    case "deleted": {
      const m = (S.chats.get(event.chat) || new Map()).get(event.id);
      if (m) upsert({ ...m, deleted: true });
      break;
    }
    case "keyboard":
      if (event.keyboard) S.keyboards.set(event.chat, event.keyboard);
      else S.keyboards.delete(event.chat);
      for (const kind of paneOfChat(event.chat)) drawKeyboard(kind);
      break;
    case "force_reply": {
      const m = (S.chats.get(event.chat) || new Map()).get(event.id);
      if (m) for (const kind of paneOfChat(event.chat)) startReply(kind, m);
      break;
    }
    case "toast": for (const kind of paneOfChat(event.chat)) toast(kind, event.text); break;
    case "customers": fillCustomers(event.customers); drawPane("customer"); break;
    case "topic": S.topics.set(String(event.thread), event.name); fillTopics(); break;
    case "topics": S.state.group.topics_on = event.on; $("#topics-on").checked = event.on; fillTopics(); drawPane("group"); break;
    case "clock": setClock(event); break;
    case "ticked": setClock(event); $("#clock-status").textContent = tickedText(event.result); break;
    default: break;
  }
}

function toast(kind, text) {
  const box = $(`#pane-${kind} .toast`);
  box.textContent = text;
  box.hidden = false;
  clearTimeout(box._timer);
  box._timer = setTimeout(() => { box.hidden = true; }, 5000);
}

// ---- the clock ----------------------------------------------------------------------------

function setClock(clock) {
  S.clockOffset = new Date(clock.now).getTime() - Date.now();
  drawClock();
}

function demoNow() { return new Date(Date.now() + S.clockOffset); }

function drawClock() {
  const now = demoNow();
  const shown = new Intl.DateTimeFormat("en-GB", {
    timeZone: S.tz, weekday: "short", day: "numeric", month: "short", year: "numeric",
    hour: "2-digit", minute: "2-digit",
  }).format(now);
  const clock = $("#clock-now");
  clock.textContent = `${shown} (${S.tz})`;
  clock.setAttribute("datetime", now.toISOString());
  const input = $("#clock-moment");
  if (document.activeElement !== input) input.value = localInput(new Date(now.getTime() + 86400000));
}

function localInput(date) {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: S.tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  }).formatToParts(date);
  const part = (type) => (parts.find((p) => p.type === type) || {}).value;
  return `${part("year")}-${part("month")}-${part("day")}T${part("hour")}:${part("minute")}`;
}

function tickedText(result) {
  const done = Object.entries(result || {}).map(([k, v]) => `${k.replace(/^outbox_/, "").replace(/_/g, " ")} ${v}`);
  return done.length ? `Ran the planners and the sender: ${done.join(", ")}` : "Ran the planners and the sender: nothing was due";
}

async function moveClock(body) {
  const buttons = document.querySelectorAll(".clock button");
  buttons.forEach((b) => { b.disabled = true; });
  $("#clock-status").textContent = "Moving the clock…";
  try {
    const answer = await api("/api/clock", body);
    setClock(answer);
    $("#clock-status").textContent = tickedText(answer.result);
  } catch (e) {
    $("#clock-status").textContent = "";
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

// ---- wiring -------------------------------------------------------------------------------

function wire() {
  for (const button of document.querySelectorAll("[data-add]")) {
    button.addEventListener("click", () => moveClock({ add: button.dataset.add }));
  }
  $("#clock-to").addEventListener("submit", (event) => {
    event.preventDefault();
    moveClock({ to: $("#clock-moment").value });
  });
  for (const kind of PANES) {
    const pane = $(`#pane-${kind}`);
    const form = $(".composer", pane);
    const text = $("textarea", form);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const chat = chatOf(kind);
      if (!text.value.trim() || chat === null) return;
      const replied = S.replyTo[kind];
      const body = { text: text.value, reply_to: replied };
      if (kind === "group" && S.current.topic) body.thread = Number(S.current.topic);
      text.value = "";
      if (replied) cancelReply(kind);
      try {
        await api(`/api/chats/${chat}/text`, body);
      } catch (e) {
        if (!text.value) text.value = body.text; // not sent: the words stay to try again
      }
    });
    text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    $(".photo-input", form).addEventListener("change", async (event) => {
      const file = event.target.files[0];
      if (!file) return;
      const data = new FormData();
      const replied = S.replyTo[kind];
      data.append("photo", file);
      data.append("caption", text.value);
      if (replied) data.append("reply_to", replied);
      if (kind === "group" && S.current.topic) data.append("thread", S.current.topic);
      try {
        await api(`/api/chats/${chatOf(kind)}/photo`, null, data);
        text.value = "";
        if (S.replyTo[kind] === replied) cancelReply(kind);
      } finally {
        event.target.value = "";
      }
    });
    $(".cancel-reply", pane).addEventListener("click", () => cancelReply(kind));
  }
  $("#customer-select").addEventListener("change", (event) => {
    S.current.customer = Number(event.target.value);
    const option = event.target.selectedOptions[0];
    if (option) option.textContent = option.textContent.replace(/^• /, "");
    cancelReply("customer");
    drawPane("customer");
  });
  $("#master-select").addEventListener("change", (event) => {
    S.current.master = Number(event.target.value);
    cancelReply("master");
    drawPane("master");
  });
  $("#topic-select").addEventListener("change", (event) => {
    S.current.topic = event.target.value;
    cancelReply("group");
    drawPane("group");
  });
  $("#topics-on").addEventListener("change", (event) => api("/api/topics", { on: event.target.checked }));
  const dialog = $("#customer-dialog");
  $("#add-customer").addEventListener("click", () => { $("#customer-name").value = ""; dialog.showModal(); });
  $("#customer-cancel").addEventListener("click", () => dialog.close());
  $("#customer-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const answer = await api("/api/customers", { name: $("#customer-name").value, lang: $("#customer-lang").value });
    dialog.close();
    S.current.customer = answer.id;
    $("#customer-select").value = answer.id;
    drawPane("customer");
  });
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".tabs button")) other.setAttribute("aria-pressed", String(other === tab));
      for (const kind of PANES) $(`#pane-${kind}`).classList.toggle("active", kind === tab.dataset.pane);
    });
  }
  setInterval(drawClock, 15000);
}

async function start() {
  wire();
  await load();
  const events = new EventSource("/api/events");
  events.onmessage = (event) => handle(JSON.parse(event.data));
  events.onopen = () => {
    load().then(() => { document.body.dataset.live = "true"; }).catch(() => {});
  };
}

start();
