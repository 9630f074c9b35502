// Chat: sends the message to the run API with stream=true and renders the Server-Sent Events as they
// arrive. Model output is untrusted: it is only ever set as textContent, never as HTML.
(function () {
  "use strict";
  var form = document.getElementById("chat-form");
  if (!form) return;
  var transcript = document.getElementById("transcript");
  var textarea = form.querySelector("textarea[name=message]");
  var button = form.querySelector("button[type=submit]");

  function add(cls, text) {
    var empty = document.getElementById("transcript-empty");
    if (empty) empty.remove();
    var div = document.createElement("div");
    div.className = "msg " + cls;
    div.textContent = text || "";
    transcript.appendChild(div);
    transcript.scrollTop = transcript.scrollHeight;
    return div;
  }

  function note(parent, text) {
    var span = document.createElement("span");
    span.className = "event-note small";
    span.textContent = text;
    parent.parentNode.insertBefore(span, parent);
  }

  function handle(name, data, state) {
    if (name === "run") {
      state.runId = data.run_id;
      form.elements.conversation_id.value = data.conversation_id;
      var url = new URL(window.location.href);
      url.searchParams.set("conversation", data.conversation_id);
      window.history.replaceState(null, "", url);
    } else if (name === "text") {
      state.bubble.textContent += data.delta;
      transcript.scrollTop = transcript.scrollHeight;
    } else if (name === "tool_call") {
      note(state.bubble, "⚙ " + data.name + "(" + data.arguments + ")");
    } else if (name === "tool_output") {
      note(state.bubble, "↳ " + (typeof data.output === "string" ? data.output : JSON.stringify(data.output)));
    } else if (name === "handoff") {
      note(state.bubble, "⇄ " + data.from + " → " + data.to);
    } else if (name === "error") {
      state.bubble.classList.add("failed");
      state.bubble.textContent = data.detail;
    } else if (name === "done") {
      if (data.status === "succeeded" && data.output !== null && typeof data.output !== "string") {
        state.bubble.textContent = JSON.stringify(data.output, null, 2);
      } else if (data.status === "succeeded" && !state.bubble.textContent) {
        state.bubble.textContent = data.output || "";
      }
      var link = document.createElement("a");
      link.className = "run-link small";
      link.href = form.dataset.runPage.replace(/0\/$/, data.run_id + "/");
      link.textContent = "run #" + data.run_id;
      state.bubble.appendChild(document.createTextNode(" "));
      state.bubble.appendChild(link);
      if (data.trace_id) {
        var trace = document.createElement("a");
        trace.className = "run-link small";
        trace.href = form.dataset.tracePage.replace(/trace_placeholder\/$/, encodeURIComponent(data.trace_id) + "/");
        trace.textContent = "trace";
        state.bubble.appendChild(document.createTextNode(" · "));
        state.bubble.appendChild(trace);
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
    var state = { bubble: add("assistant streaming", ""), runId: null };
    var body = { message: message, stream: true };
    if (form.elements.conversation_id.value) body.conversation_id = Number(form.elements.conversation_id.value);
    if (form.elements.context_id) body.context_id = Number(form.elements.context_id.value);
    try {
      var response = await fetch(form.dataset.runUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": form.dataset.csrf },
        body: JSON.stringify(body),
        credentials: "same-origin",
      });
      if (!response.ok || !response.body) {
        var problem = await response.json().catch(function () { return { detail: response.statusText }; });
        state.bubble.classList.add("failed");
        state.bubble.textContent = problem.detail || "The request failed.";
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
      state.bubble.textContent = "The connection was lost: " + error.message;
    } finally {
      state.bubble.classList.remove("streaming");
      button.disabled = false;
      textarea.focus();
    }
  }

  form.addEventListener("submit", send);
  textarea.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
})();
