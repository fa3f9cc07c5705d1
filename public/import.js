// Upload progress for the Import page's form. Without this script the form still posts
// (and the server answers with the Import page); with it the upload shows a progress bar,
// a refusal shows its reason beside the form, and the page then follows the import. Wires
// any import form that appears later too (client-side navigation).
(function () {
  'use strict';
  function wire() {
    var form = document.getElementById('import-form');
    if (!form || form.getAttribute('data-wired')) return;
    form.setAttribute('data-wired', '');
    form.addEventListener('submit', function (event) {
      var input = form.querySelector('input[type=file]');
      if (!input || !input.files || !input.files.length || !window.FormData) return;
      event.preventDefault();
      var bar = document.getElementById('import-upload');
      var message = document.getElementById('import-message');
      var button = form.querySelector('button[type=submit]');
      var xhr = new XMLHttpRequest();
      xhr.open('POST', form.action);
      xhr.setRequestHeader('Accept', 'application/json');
      bar.hidden = false;
      bar.value = 0;
      button.disabled = true;
      message.textContent = 'Uploading…';
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) bar.value = Math.round((e.loaded * 100) / e.total);
      };
      xhr.onload = function () {
        var body = {};
        try { body = JSON.parse(xhr.responseText); } catch (ignored) { /* not JSON */ }
        if (xhr.status === 201) {
          bar.value = 100;
          message.textContent = 'Uploaded. Reading your history…';
          window.location.assign('/import');
          return;
        }
        button.disabled = false;
        bar.hidden = true;
        message.textContent = body.error || 'The upload failed (HTTP ' + xhr.status + ').';
      };
      xhr.onerror = function () {
        button.disabled = false;
        bar.hidden = true;
        message.textContent = 'The upload failed: the connection was lost. Try again.';
      };
      xhr.send(new FormData(form));
    });
  }
  wire();
  if (window.MutationObserver) {
    new MutationObserver(wire).observe(document.documentElement, { childList: true, subtree: true });
  }
})();
