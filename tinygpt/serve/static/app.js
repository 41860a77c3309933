// The story playground: streams a story from this server's /v1/completions (server-sent events).
"use strict";

(() => {
  const KEY_STORAGE = "tinygpt-api-key";
  const MAX_TOKENS_CAP = 1024;

  const $ = (id) => document.getElementById(id);
  const ui = {
    modelName: $("model-name"),
    prompt: $("prompt"),
    temperature: $("temperature"),
    temperatureValue: $("temperature-value"),
    topP: $("top-p"),
    topPValue: $("top-p-value"),
    maxTokens: $("max-tokens"),
    seed: $("seed"),
    keyRow: $("key-row"),
    apiKey: $("api-key"),
    keyMessage: $("key-message"),
    write: $("write"),
    stop: $("stop"),
    story: $("story"),
    storyPrompt: $("story-prompt"),
    generated: $("generated"),
    status: $("status"),
    settings: $("settings"),
  };

  let model = null;             // the served model's name, once /v1/models answered
  let maxTokensLimit = MAX_TOKENS_CAP;
  let controller = null;        // the AbortController of the story being written

  // ---- API key --------------------------------------------------------------------------------

  function storedKey() {
    try {
      return localStorage.getItem(KEY_STORAGE) || "";
    } catch (_) {
      return "";
    }
  }

  function storeKey(key) {
    try {
      if (key) localStorage.setItem(KEY_STORAGE, key);
      else localStorage.removeItem(KEY_STORAGE);
    } catch (_) {
      // storage disabled (private mode): the key lasts for this page only
    }
    sessionKey = key;
  }

  let sessionKey = storedKey();

  function headers(withBody) {
    const h = {};
    if (withBody) h["Content-Type"] = "application/json";
    if (sessionKey) h["Authorization"] = "Bearer " + sessionKey;
    return h;
  }

  function askForKey(message) {
    ui.keyRow.hidden = false;
    ui.apiKey.hidden = false;
    ui.keyMessage.textContent = message;
    if (sessionKey) ui.apiKey.value = sessionKey;
    ui.apiKey.focus();
  }

  function keyAccepted() {
    ui.keyRow.hidden = true;
    ui.apiKey.hidden = true;
    ui.keyMessage.textContent = "";
  }

  function useKey() {
    const key = ui.apiKey.value.trim();
    if (key === sessionKey) return;
    storeKey(key);
    ui.keyMessage.textContent = "Key saved in this browser. Checking it…";
    loadModel();
  }
  ui.apiKey.addEventListener("change", useKey);
  ui.keyRow.addEventListener("submit", (e) => {
    e.preventDefault();
    useKey();
  });

  // ---- errors ---------------------------------------------------------------------------------

  // The readable message of a refused request: the server answers {"error": {"message": ...}}.
  async function errorMessage(response) {
    let text = "";
    try {
      text = await response.text();
    } catch (_) {
      // the body could not be read: the status says enough
    }
    try {
      const body = JSON.parse(text);
      if (body && body.error) {
        return typeof body.error === "string" ? body.error : body.error.message || JSON.stringify(body.error);
      }
      if (body && body.detail) return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (_) {
      // not JSON: shown as text below
    }
    const head = `HTTP ${response.status}${response.statusText ? " " + response.statusText : ""}`;
    return text.trim() ? `${head}: ${text.trim().slice(0, 300)}` : head;
  }

  function keyMessageFor(what) {
    return sessionKey
      ? `The server refused this API key. Enter the right key, then ${what}.`
      : `This server needs an API key. Enter it, then ${what}.`;
  }

  function setStatus(text, isError = false) {
    ui.status.textContent = text;
    ui.status.classList.toggle("error", isError);
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---- the model ------------------------------------------------------------------------------

  async function loadModel() {
    ui.modelName.textContent = "loading…";
    for (let attempt = 0; ; attempt++) {
      let response;
      try {
        response = await fetch("/v1/models", { headers: headers(false) });
      } catch (e) {
        ui.modelName.textContent = "unreachable";
        setStatus(`Could not reach the server: ${e.message}`, true);
        return false;
      }
      if (response.status === 401) {
        ui.modelName.textContent = "needs an API key";
        askForKey(keyMessageFor("press Enter"));
        return false;
      }
      if (response.status === 503 && attempt < 120) {  // the model is still loading
        ui.modelName.textContent = "loading…";
        await sleep(1000);
        continue;
      }
      if (!response.ok) {
        ui.modelName.textContent = "unavailable";
        setStatus(await errorMessage(response), true);
        return false;
      }
      const body = await response.json();
      const card = body && Array.isArray(body.data) ? body.data[0] : null;
      if (!card || !card.id) {
        ui.modelName.textContent = "none";
        setStatus("The server lists no model.", true);
        return false;
      }
      model = card.id;
      ui.modelName.textContent = model;
      document.title = `tinygpt playground · ${model}`;
      keyAccepted();
      if (Number.isInteger(card.max_model_len) && card.max_model_len > 0) {
        maxTokensLimit = Math.min(MAX_TOKENS_CAP, card.max_model_len);
        ui.maxTokens.max = String(maxTokensLimit);
        ui.maxTokens.title = `at most ${maxTokensLimit}: this model's context is ${card.max_model_len} tokens`;
        if (Number(ui.maxTokens.value) > maxTokensLimit) ui.maxTokens.value = String(maxTokensLimit);
      }
      if (ui.status.classList.contains("error")) setStatus("ready");
      return true;
    }
  }

  // ---- controls -------------------------------------------------------------------------------

  function showSliders() {
    ui.temperatureValue.textContent = Number(ui.temperature.value).toFixed(2);
    ui.topPValue.textContent = Number(ui.topP.value).toFixed(2);
  }
  ui.temperature.addEventListener("input", showSliders);
  ui.topP.addEventListener("input", showSliders);

  for (const button of document.querySelectorAll(".starter")) {
    button.addEventListener("click", () => {
      ui.prompt.value = button.textContent.trim();
      ui.prompt.focus();
      ui.prompt.setSelectionRange(ui.prompt.value.length, ui.prompt.value.length);
    });
  }

  ui.prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      if (!controller) write();
    }
  });

  // The sampling settings from the controls; out-of-range values are brought into range (and
  // shown so); a seed that is not a whole number is refused.
  function readSettings() {
    const temperature = Math.min(2, Math.max(0, Number(ui.temperature.value) || 0));
    const topP = Math.min(1, Math.max(0.05, Number(ui.topP.value) || 1));
    let maxTokens = Math.round(Number(ui.maxTokens.value));
    if (!Number.isFinite(maxTokens) || ui.maxTokens.value.trim() === "") maxTokens = Math.min(200, maxTokensLimit);
    maxTokens = Math.min(maxTokensLimit, Math.max(1, maxTokens));
    ui.maxTokens.value = String(maxTokens);
    const seedText = ui.seed.value.trim();
    let seed = null;
    if (seedText !== "" || ui.seed.validity.badInput) {
      seed = Number(seedText);
      if (seedText === "" || !Number.isSafeInteger(seed)) {
        throw new Error("The seed must be a whole number (or empty for a random story).");
      }
    }
    return { temperature, topP, maxTokens, seed };
  }

  function describe(s) {
    return `temperature ${s.temperature} · top_p ${s.topP} · max_tokens ${s.maxTokens} · seed ${
      s.seed === null ? "random" : s.seed}`;
  }

  function setWriting(writing) {
    ui.write.disabled = writing;
    ui.stop.disabled = !writing;
    ui.generated.classList.toggle("streaming", writing);
    ui.story.setAttribute("aria-busy", writing ? "true" : "false");
  }

  // ---- the stream -----------------------------------------------------------------------------

  // Reads a server-sent event stream, calling onData with each event's data; onData returning
  // false ends the reading. Partial lines are kept until the rest arrives. Returns true if the
  // stream was ended by onData (its `[DONE]`), false if the connection closed first.
  async function readEvents(body, onData, onBatch) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let data = [];

    const line = (text) => {
      if (text.endsWith("\r")) text = text.slice(0, -1);
      if (text === "") {  // the end of an event
        if (!data.length) return true;
        const payload = data.join("\n");
        data = [];
        return onData(payload) !== false;
      }
      if (text.startsWith(":")) return true;  // a comment (keep-alive)
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? "" : text.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") data.push(value);
      return true;
    };

    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const text = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (!line(text)) {
            onBatch();
            await drain(reader);
            return true;
          }
        }
        onBatch();
      }
      buffer += decoder.decode();
      const ended = (buffer && !line(buffer)) || !line("");
      onBatch();
      return ended;
    } catch (e) {
      reader.cancel().catch(() => {});  // stopped, or a broken chunk: the connection closes
      throw e;
    }
  }

  // Reads what follows `[DONE]` (only the end of the body), so the request ends as complete
  // rather than cancelled; a connection that stays open is closed after a while.
  async function drain(reader) {
    const timer = setTimeout(() => reader.cancel().catch(() => {}), 2000);
    try {
      while (!(await reader.read()).done) {
        // nothing comes after [DONE]
      }
    } catch (_) {
      // stopped or closed: the story is complete either way
    } finally {
      clearTimeout(timer);
    }
  }

  async function write() {
    if (controller) return;
    if (!model && !(await loadModel())) {
      if (!ui.status.classList.contains("error")) setStatus("No model to write with yet.", true);
      return;
    }
    let s;
    try {
      s = readSettings();
    } catch (e) {
      setStatus(e.message, true);
      return;
    }
    const prompt = ui.prompt.value;
    const request = {
      model,
      prompt,
      max_tokens: s.maxTokens,
      temperature: s.temperature,
      top_p: s.topP,
      stream: true,
      stream_options: { include_usage: true },
    };
    if (s.seed !== null) request.seed = s.seed;

    controller = new AbortController();
    setWriting(true);
    setStatus("writing… 0 tokens");

    let text = "";
    let tokens = 0;        // chunks with text, counted live
    let usage = null;      // the final figures, from the last chunk
    let finish = null;
    let started = performance.now();
    const elapsed = () => (performance.now() - started) / 1000;
    const rate = (n, t) => (t > 0 ? n / t : 0).toFixed(1);

    try {
      const response = await fetch("/v1/completions", {
        method: "POST",
        headers: headers(true),
        body: JSON.stringify(request),
        signal: controller.signal,
      });
      if (!response.ok) {
        const message = await errorMessage(response);
        if (response.status === 401) askForKey(keyMessageFor("press Write again"));
        throw new Error(message);
      }
      if (!response.body) throw new Error("This browser cannot read a streamed answer.");
      keyAccepted();
      ui.story.removeAttribute("data-empty");  // the last story stays until the new one starts
      ui.storyPrompt.textContent = prompt;
      ui.generated.textContent = "";
      ui.settings.textContent = describe(s);
      started = performance.now();  // from the first byte: what the model takes, not the queue

      const onData = (payload) => {
        if (payload === "[DONE]") return false;
        let chunk;
        try {
          chunk = JSON.parse(payload);
        } catch (_) {
          throw new Error(`The server sent something that is not JSON: ${payload.slice(0, 200)}`);
        }
        if (chunk.error) throw new Error(chunk.error.message || JSON.stringify(chunk.error));
        for (const choice of chunk.choices || []) {
          if (choice.text) {
            text += choice.text;
            tokens += 1;
          }
          if (choice.finish_reason) finish = choice.finish_reason;
        }
        if (chunk.usage) usage = chunk.usage;
        return true;
      };
      const onBatch = () => {
        if (ui.generated.textContent.length !== text.length) ui.generated.textContent = text;
        setStatus(`writing… ${tokens} tokens, ${rate(tokens, elapsed())} tokens/s`);
      };

      const ended = await readEvents(response.body, onData, onBatch);
      const seconds = elapsed();
      const n = usage && Number.isInteger(usage.completion_tokens) ? usage.completion_tokens : tokens;
      if (ended) {
        setStatus(`done: ${n} tokens in ${seconds.toFixed(2)} s, ${rate(n, seconds)} tokens/s (finish: ${
          finish || "unknown"})`);
      } else {
        setStatus(`The connection closed before the story was finished (${n} tokens).`, true);
      }
    } catch (e) {
      if (text) ui.generated.textContent = text;
      if (e && e.name === "AbortError") {
        setStatus(`stopped after ${tokens} tokens`);
      } else {
        const message = e instanceof TypeError ? `Could not reach the server: ${e.message}` : e.message;
        setStatus(`Error: ${message}`, true);
        ui.status.scrollIntoView({ block: "nearest" });
      }
    } finally {
      controller = null;
      setWriting(false);
    }
  }

  ui.write.addEventListener("click", write);
  ui.stop.addEventListener("click", () => {
    if (controller) controller.abort();
  });

  showSliders();
  setWriting(false);
  loadModel();
})();
