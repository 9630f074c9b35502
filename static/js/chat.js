// Chat: sends the message to the run API with stream=true and renders the Server-Sent Events as they
// arrive. Model output is untrusted: it is only ever set as textContent, never as HTML.
(function () {
  "use strict";
  var form = document.getElementById("chat-form");
  if (!form) return;
  var transcript = document.getElementById("transcript");
  var textarea = form.querySelector("textarea[name=message]");
  var button = form.querySelector("button[type=submit]");
  var stop = document.getElementById("chat-stop");
  var controller = null;

  // The line under an answer (status, run and trace links, "Fix the provider") is rendered by the server,
  // the same as after a reload.
  function showMeta(state) {
    if (!state.runId || !window.htmx) return;
    var slot = document.createElement("div");
    state.bubble.appendChild(slot);
    window.htmx.ajax("GET", form.dataset.metaUrl.replace(/0\/meta\/$/, state.runId + "/meta/"), { target: slot, swap: "outerHTML" });
  }

  function refreshConversations() {
    var list = document.getElementById("conversation-list");
    if (!list || !window.htmx) return;
    var url = list.dataset.url + "?part=conversations&conversation=" + encodeURIComponent(form.elements.conversation_id.value);
    window.htmx.ajax("GET", url, { target: list, swap: "outerHTML" });
  }

  function add(cls, text) {
    var empty = document.getElementById("transcript-empty");
    if (empty) empty.remove();
    var div = document.createElement("div");
    div.className = "msg " + cls;
    var body = document.createElement("span");
    body.className = "msg-text";
    body.textContent = text || "";
    div.appendChild(body);
    transcript.appendChild(div);
    transcript.scrollTop = transcript.scrollHeight;
    return div;
  }

  function note(parent, text) {
    var span = document.createElement("span");
    span.className = "event-note small";
    span.textContent = text;
    parent.parentNode.insertBefore(span, parent);
    transcript.scrollTop = transcript.scrollHeight;
  }

  function handle(name, data, state) {
    if (name === "run") {
      state.runId = data.run_id;
      form.elements.conversation_id.value = data.conversation_id;
      var url = new URL(window.location.href);
      url.searchParams.set("conversation", data.conversation_id);
      window.history.replaceState(null, "", url);
    } else if (name === "text") {
      state.text.textContent += data.delta;
      transcript.scrollTop = transcript.scrollHeight;
    } else if (name === "tool_call") {
      note(state.bubble, "⚙ " + data.name + "(" + data.arguments + ")");
    } else if (name === "tool_output") {
      note(state.bubble, "↳ " + (typeof data.output === "string" ? data.output : JSON.stringify(data.output)));
    } else if (name === "handoff") {
      note(state.bubble, "⇄ " + data.from + " → " + data.to);
    } else if (name === "guardrail") {
      // A guardrail blocked the message or withheld the answer: its message replaces what was shown.
      state.bubble.classList.add("blocked");
      state.text.textContent = data.message;
      note(state.bubble, "🛡 " + data.type + " guardrail " + data.name + (data.error ? " could not decide: " + data.error : " tripped"));
    } else if (name === "error") {
      state.bubble.classList.add("failed");
      state.text.textContent = data.detail;
    } else if (name === "done") {
      state.runId = data.run_id;
      if (data.status === "blocked") {
        state.text.textContent = data.output || "";
      } else if (data.status === "succeeded" && data.output !== null && typeof data.output !== "string") {
        state.text.textContent = JSON.stringify(data.output, null, 2);
      } else if (data.status === "succeeded" && !state.text.textContent) {
        state.text.textContent = data.output || "";
      }
    }
  }

  async function send(event) {
    event.preventDefault();
    var message = textarea.value.trim();
    if (!message || button.disabled) return;
    add("user", message);
    textarea.value = "";
    button.disabled = true;
    var bubble = add("assistant streaming", "");
    var state = { bubble: bubble, text: bubble.querySelector(".msg-text"), runId: null };
    controller = new AbortController();
    if (stop) stop.hidden = false;
    var body = { message: message, stream: true };
    if (form.elements.conversation_id.value) body.conversation_id = Number(form.elements.conversation_id.value);
    if (form.elements.context_id) body.context_id = Number(form.elements.context_id.value);
    try {
      var response = await fetch(form.dataset.runUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": form.dataset.csrf },
        body: JSON.stringify(body),
        credentials: "same-origin",
        signal: controller.signal,
      });
      if (!response.ok || !response.body) {
        var problem = await response.json().catch(function () { return { detail: response.statusText }; });
        state.bubble.classList.add("failed");
        state.text.textContent = problem.detail || "The request failed.";
        return;
      }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) break;
        buffer += decoder.decode(chunk.value, { stream: true });
        var blocks = buffer.split("\n\n");
        buffer = blocks.pop();
        blocks.forEach(function (block) {
          var name = "", data = "";
          block.split("\n").forEach(function (line) {
            if (line.indexOf("event: ") === 0) name = line.slice(7);
            else if (line.indexOf("data: ") === 0) data += line.slice(6);
          });
          if (name) handle(name, JSON.parse(data || "{}"), state);
        });
      }
    } catch (error) {
      state.bubble.classList.add("failed");
      if (error.name === "AbortError") {
        // Closing the stream is what cancels the run on the server (and refunds its credits).
        state.text.textContent += (state.text.textContent ? "\n" : "") + "Stopped.";
      } else {
        state.text.textContent = "The connection was lost: " + error.message;
      }
    } finally {
      state.bubble.classList.remove("streaming");
      button.disabled = false;
      if (stop) stop.hidden = true;
      controller = null;
      showMeta(state);
      refreshConversations();
      textarea.focus();
    }
  }

  form.addEventListener("submit", send);
  if (stop) stop.addEventListener("click", function () { if (controller) controller.abort(); });
  textarea.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
})();
