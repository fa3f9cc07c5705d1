// What plain forms gain with a script; without it each form still posts and the server
// answers with a page. Wires forms that appear later too (client-side navigation).
//
// 1. The Import page: upload progress; a refusal shows its reason beside the form, and the
//    page then follows the import.
// 2. The Listening page's time zone: while the listener has never chosen one (the form
//    says data-zone-set="false"), the browser's own zone is saved once and the page
//    reloaded, so days and hours are the listener's from the first visit; a zone typed
//    into the form is saved the same way, and a refusal shows beside it.
(function () {
  'use strict';
  // Forms already given their handler. Not an attribute: hydration may reset a form's
  // attributes, and a form wired twice posted twice (and was refused as a second upload).
  var wired = typeof WeakSet === 'function' ? new WeakSet() : null;
  function firstTime(form) {
    if (!wired) {
      if (form.getAttribute('data-wired')) return false;
      form.setAttribute('data-wired', '');
      return true;
    }
    if (wired.has(form)) return false;
    wired.add(form);
    return true;
  }
  function saveZone(form, zone, message) {
    return fetch(form.action, {
      method: 'POST',
      headers: { 'Accept': 'application/json', 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'time_zone=' + encodeURIComponent(zone),
      credentials: 'same-origin'
    }).then(function (response) {
      if (response.ok) {
        window.location.reload();
        return;
      }
      return response.json().then(function (body) {
        if (message) message.textContent = body.error || ('Not saved (HTTP ' + response.status + ').');
      });
    });
  }
  function wireZone() {
    var form = document.getElementById('zone-form');
    if (!form || !firstTime(form)) return;
    var message = document.getElementById('zone-message');
    form.addEventListener('submit', function (event) {
      var input = form.querySelector('input[name=time_zone]');
      if (!input || !window.fetch) return;
      event.preventDefault();
      saveZone(form, input.value, message).catch(function () {
        if (message) message.textContent = 'Not saved: the connection was lost. Try again.';
      });
    });
    if (form.getAttribute('data-zone-set') !== 'false' || !window.fetch) return;
    var zone = '';
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ''; } catch (ignored) { return; }
    // Once per tab: a refusal (an unknown name, the node down) is not retried in a loop.
    try {
      if (!zone || window.sessionStorage.getItem('zone-tried') === zone) return;
      window.sessionStorage.setItem('zone-tried', zone);
    } catch (ignored) { return; }
    saveZone(form, zone, message).catch(function () { /* the page stays in UTC and says so */ });
  }
  function wire() {
    wireZone();
    var form = document.getElementById('import-form');
    if (!form || !firstTime(form)) return;
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
