// A knowledge base's page: files dropped on the upload zone (or chosen) are sent at once, with the upload's
// progress shown; the server answers with the files table, which then polls itself while files are processed.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) return;
  var input = document.getElementById("upload-input");
  var bar = document.getElementById("upload-progress");

  function send() {
    if (!input.files.length) return;
    if (window.htmx) window.htmx.trigger(form, "submit");
    else form.submit();
  }

  ["dragenter", "dragover"].forEach(function (name) {
    form.addEventListener(name, function (event) {
      event.preventDefault();
      form.classList.add("dragging");
    });
  });
  ["dragleave", "drop"].forEach(function (name) {
    form.addEventListener(name, function (event) {
      event.preventDefault();
      form.classList.remove("dragging");
    });
  });
  form.addEventListener("drop", function (event) {
    if (!event.dataTransfer || !event.dataTransfer.files.length) return;
    input.files = event.dataTransfer.files;
    send();
  });
  input.addEventListener("change", send);
  form.addEventListener("htmx:xhr:progress", function (event) {
    if (!event.detail.lengthComputable) return;
    bar.hidden = false;
    bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
  });
  form.addEventListener("htmx:afterRequest", function () {
    bar.hidden = true;
    bar.value = 0;
    input.value = "";
  });
})();
