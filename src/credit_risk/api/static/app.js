// The page builds its form from GET /schema (the codebook lives only in the Python package)
// and shows POST /predict's answer: a gauge, the decision, the threshold and, for a rejection,
// its principal reasons as codes of GET /reasons (the model's table) with their texts, then
// POST /recourse's suggestions: changes the applicant can make that the model approves.
"use strict";

// Interface strings only; attribute descriptions and value labels come from the API.
const TEXT = {
  en: {
    title: "Credit-risk scoring", applicant: "Applicant", example: "Example applicant",
    reset: "Defaults", hint: "Values are the codebook of the Statlog German Credit data.",
    loading: "Loading the codebook…", apiKey: "API key (only if the service requires one)",
    score: "Score applicant", scoring: "Scoring…", result: "Result",
    probBad: "probability of bad risk", reasons: "Principal reasons for the rejection",
    approve: "Approve", reject: "Reject",
    threshold: (t) => `Rejected when the probability of bad risk is at least ${t}.`,
    model: (m) => `Model ${m.name} v${m.version} · threshold ${pct(m.threshold)} · objective ${m.objective}`,
    fix: "Please correct the highlighted fields.", failed: "The service could not score this applicant",
    request: "Request id", allowed: "Allowed",
    recourse: "What would turn this into an approval", searching: "Looking for changes…",
    follows: "follows", approveAt: (p) => `approved: probability of bad risk ${p}`,
    recourseNote: "Changes the applicant can act on (never a protected or past attribute), each re-scored by the model.",
    noRecourse: "No change of at most three attributes the applicant can act on would be approved.",
    recourseFailed: "Could not look for changes",
  },
  es: {
    title: "Evaluación de riesgo crediticio", applicant: "Solicitante", example: "Solicitante de ejemplo",
    reset: "Valores por defecto", hint: "Los valores siguen el libro de códigos de Statlog German Credit (etiquetas en inglés).",
    loading: "Cargando el libro de códigos…", apiKey: "Clave de API (solo si el servicio la exige)",
    score: "Evaluar solicitante", scoring: "Evaluando…", result: "Resultado",
    probBad: "probabilidad de riesgo malo", reasons: "Motivos principales del rechazo",
    approve: "Aprobar", reject: "Rechazar",
    threshold: (t) => `Se rechaza cuando la probabilidad de riesgo malo es al menos ${t}.`,
    model: (m) => `Modelo ${m.name} v${m.version} · umbral ${pct(m.threshold)} · objetivo ${m.objective}`,
    fix: "Corrija los campos marcados.", failed: "El servicio no pudo evaluar al solicitante",
    request: "Id de la solicitud", allowed: "Permitido",
    recourse: "Qué cambios llevarían a la aprobación", searching: "Buscando cambios…",
    follows: "consecuencia", approveAt: (p) => `aprobado: probabilidad de riesgo malo ${p}`,
    recourseNote: "Cambios en manos del solicitante (nunca un atributo protegido o pasado), cada uno evaluado de nuevo por el modelo.",
    noRecourse: "Ningún cambio de como mucho tres atributos en manos del solicitante sería aprobado.",
    recourseFailed: "No se pudieron buscar cambios",
  },
};

let lang = (localStorage.getItem("lang") || (navigator.language || "en").slice(0, 2)) === "es" ? "es" : "en";
let codebook = null;
let modelInfo = null;
let lastResult = null;
let lastRecourse = null;  // {state: "loading" | "done" | "error", body, status}
let recourseToken = 0;  // only the latest request's answer is shown
let reasonTexts = {};  // code -> {en, es}, from GET /reasons (the served model's table)

const $ = (id) => document.getElementById(id);
const t = (key) => TEXT[lang][key];
const pct = (p) => `${(100 * p).toFixed(1)}%`;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function applyLanguage() {
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll("[data-i18n]")) {
    const value = t(node.dataset.i18n);
    if (typeof value === "string") node.textContent = value;
  }
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === lang));
  }
  if (modelInfo) $("model-info").textContent = t("model")(modelInfo);
  if (lastResult) showResult(lastResult);
  if (lastRecourse) showRecourse(lastRecourse);
}

function buildForm(schema) {
  const box = $("fields");
  box.replaceChildren();
  for (const attr of schema.attributes) {
    const id = `f-${attr.name}`;
    const label = el("label", { for: id }, attr.description);
    let input;
    if (attr.kind === "categorical") {
      input = el("select", { id, name: attr.name });
      for (const { code, label: text } of attr.codes) {
        input.append(el("option", { value: code }, `${text}`));
      }
    } else {
      input = el("input", { id, name: attr.name, type: "number", inputmode: "numeric",
        step: "1", min: String(attr.minimum), max: String(attr.maximum) });
      label.append(el("span", { class: "unit" },
        ` (${attr.minimum}–${attr.maximum}${attr.unit ? " " + attr.unit : ""})`));
    }
    input.setAttribute("aria-describedby", `${id}-error`);
    const error = el("p", { class: "error", id: `${id}-error`, "data-field-error": attr.name });
    error.hidden = true;
    box.append(el("div", { class: "field", "data-field": attr.name }, label, input, error));
  }
  fillDefaults();
}

function fillDefaults() {
  for (const attr of codebook.attributes) $(`f-${attr.name}`).value = String(attr.default);
  clearErrors();
}

// A plausible applicant drawn from the codebook (codes at random, numbers near the default).
function fillExample() {
  for (const attr of codebook.attributes) {
    const input = $(`f-${attr.name}`);
    if (attr.kind === "categorical") {
      input.value = attr.codes[Math.floor(Math.random() * attr.codes.length)].code;
    } else {
      const spread = Math.max(1, Math.round((attr.maximum - attr.minimum) / 20));
      const guess = attr.default + Math.round((Math.random() - 0.5) * 2 * spread * 3);
      const high = attr.name === "credit_amount" ? 15000 : attr.maximum;
      input.value = String(Math.min(high, Math.max(attr.minimum, guess)));
    }
  }
  clearErrors();
}

function readForm() {
  const applicant = {};
  for (const attr of codebook.attributes) {
    const raw = $(`f-${attr.name}`).value.trim();
    if (attr.kind === "categorical") applicant[attr.name] = raw;
    else applicant[attr.name] = raw === "" ? null : (/^-?\d+$/.test(raw) ? Number(raw) : raw);
  }
  return applicant;
}

function clearErrors() {
  for (const node of document.querySelectorAll("[data-field-error]")) { node.hidden = true; node.textContent = ""; }
  for (const node of document.querySelectorAll(".field.invalid")) node.classList.remove("invalid");
  $("form-error").hidden = true;
}

function showFieldErrors(detail) {
  let shown = 0;
  for (const item of detail) {
    const name = (item.loc || []).filter((p) => typeof p === "string" && p !== "body").pop();
    const box = name && document.querySelector(`[data-field="${name}"]`);
    if (!box) continue;
    box.classList.add("invalid");
    const message = box.querySelector("[data-field-error]");
    message.textContent = item.message || item.msg;
    message.hidden = false;
    shown += 1;
  }
  const summary = $("form-error");
  summary.textContent = shown ? t("fix") : `${t("failed")}: ${JSON.stringify(detail)}`;
  summary.hidden = false;
}

function setGauge(probability, threshold) {
  const fill = $("gauge-fill");
  const length = fill.getTotalLength();
  fill.style.strokeDasharray = `${length}`;
  fill.style.strokeDashoffset = `${length * (1 - probability)}`;
  fill.style.stroke = probability >= threshold ? "var(--bad)" : "var(--good)";
  // Threshold tick: angle from the left end of the arc.
  const angle = Math.PI * (1 - threshold);
  const [cx, cy] = [100, 100];
  const line = $("gauge-threshold");
  line.setAttribute("x1", cx + 70 * Math.cos(angle)); line.setAttribute("y1", cy - 70 * Math.sin(angle));
  line.setAttribute("x2", cx + 92 * Math.cos(angle)); line.setAttribute("y2", cy - 92 * Math.sin(angle));
  $("gauge-value").textContent = pct(probability);
}

function showResult(result) {
  $("result").hidden = false;
  setGauge(result.probability_bad, result.threshold);
  const decision = $("decision");
  decision.textContent = t(result.decision);
  decision.className = `decision ${result.decision}`;
  decision.dataset.decision = result.decision;
  $("threshold").textContent = t("threshold")(pct(result.threshold));
  // Only a rejection has reasons; an approval shows none.
  const list = $("reasons");
  list.replaceChildren();
  $("reasons-block").hidden = !result.reasons.length;
  const top = Math.max(...result.reasons.map((r) => r.contribution), 1e-9);
  for (const reason of result.reasons) {
    const text = (reasonTexts[reason.code] || {})[lang] || reason.text;
    const item = el("li", { "data-code": reason.code, "data-attribute": reason.attribute || "" },
      el("code", { class: "code" }, reason.code), " ",
      el("span", { class: "text" }, text),
      el("span", { class: "bar", style: `width:${Math.max(4, 100 * reason.contribution / top)}%` }));
    list.append(item);
  }
  $("request-id").textContent = `${t("request")}: ${result.request_id}`;
}

// POST /recourse's suggestions for a rejection: each a list of changes (from -> to, with the
// codebook's texts) and the probability the model gives with them.
function showRecourse(recourse) {
  const block = $("recourse-block");
  const list = $("recourse");
  list.replaceChildren();
  block.hidden = false;
  block.dataset.state = recourse.state;
  const note = $("recourse-note");
  if (recourse.state === "loading") { note.textContent = t("searching"); return; }
  if (recourse.state === "error") { note.textContent = `${t("recourseFailed")} (${recourse.status})`; return; }
  const suggestions = recourse.body.suggestions;
  note.textContent = suggestions.length ? t("recourseNote") : t("noRecourse");
  const described = Object.fromEntries((codebook ? codebook.attributes : []).map((a) => [a.name, a.description]));
  for (const suggestion of suggestions) {
    const changes = el("ul", { class: "changes" });
    for (const change of suggestion.changes) {
      const item = el("li", { "data-attribute": change.attribute, class: change.consequence ? "consequence" : "" },
        el("span", { class: "what" }, `${described[change.attribute] || change.description}: `),
        el("span", { class: "from" }, change.before_text), " → ",
        el("strong", { class: "to" }, change.after_text));
      if (change.consequence) item.append(el("span", { class: "muted" }, ` (${t("follows")})`));
      changes.append(item);
    }
    const acted = suggestion.changes.filter((c) => !c.consequence).map((c) => c.attribute);
    list.append(el("li", { "data-attributes": acted.join(","), "data-probability": String(suggestion.probability_bad) },
      changes, el("p", { class: "outcome" }, t("approveAt")(pct(suggestion.probability_bad)))));
  }
}

async function findRecourse(applicant, headers) {
  const token = ++recourseToken;
  lastRecourse = { state: "loading" };
  showRecourse(lastRecourse);
  let answer;
  try {
    const response = await fetch(`/recourse?lang=${lang}`, { method: "POST", headers, body: JSON.stringify(applicant) });
    const body = await response.json().catch(() => ({}));
    answer = response.ok ? { state: "done", body } : { state: "error", status: response.status };
  } catch (error) {
    answer = { state: "error", status: String(error) };
  }
  if (token !== recourseToken) return;  // a newer applicant was scored meanwhile
  lastRecourse = answer;
  showRecourse(answer);
}

function hideRecourse() {
  recourseToken += 1;
  lastRecourse = null;
  $("recourse-block").hidden = true;
  $("recourse").replaceChildren();
}

async function submit(event) {
  event.preventDefault();
  clearErrors();
  hideRecourse();
  const button = $("submit");
  button.disabled = true;
  button.textContent = t("scoring");
  try {
    const headers = { "Content-Type": "application/json" };
    const key = $("api-key").value.trim();
    if (key) headers["X-API-Key"] = key;
    const applicant = readForm();
    const response = await fetch(`/predict?lang=${lang}`, { method: "POST", headers, body: JSON.stringify(applicant) });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      lastResult = body;
      showResult(body);
      if (body.decision === "reject") findRecourse(applicant, headers);
    }
    else if (response.status === 422 && Array.isArray(body.detail)) showFieldErrors(body.detail);
    else {
      if (response.status === 401) $("api-key").closest("details").open = true;
      $("form-error").textContent = `${t("failed")} (${response.status}): ${body.detail || ""}`;
      $("form-error").hidden = false;
    }
  } catch (error) {
    $("form-error").textContent = `${t("failed")}: ${error}`;
    $("form-error").hidden = false;
  } finally {
    button.disabled = false;
    button.textContent = t("score");
  }
}

async function start() {
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.addEventListener("click", () => { lang = button.dataset.lang; localStorage.setItem("lang", lang); applyLanguage(); });
  }
  $("applicant-form").addEventListener("submit", submit);
  $("example").addEventListener("click", fillExample);
  $("reset").addEventListener("click", fillDefaults);
  applyLanguage();
  codebook = await (await fetch("/schema")).json();
  buildForm(codebook);
  document.body.dataset.ready = "true";
  try {
    const response = await fetch("/model");
    if (response.ok) { modelInfo = await response.json(); applyLanguage(); }
    const table = await fetch("/reasons");
    if (table.ok) {
      for (const row of (await table.json()).codes) reasonTexts[row.code] = row.text;
      document.body.dataset.reasons = "true";
    }
  } catch (_) { /* the form still works; /health tells why */ }
}

start();
