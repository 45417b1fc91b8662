// Saves each answer the moment it is clicked, so closing the page loses nothing.
(function () {
  "use strict";
  var form = document.getElementById("rating-form");
  if (!form) return;
  var status = document.getElementById("status");
  var pending = 0;

  function show(text, isError) {
    status.textContent = text;
    status.className = isError ? "status error" : "status";
  }

  form.addEventListener("change", function (event) {
    var input = event.target;
    if (input.type !== "radio") return;
    var question = input.closest("fieldset.question");
    pending += 1;
    form.dataset.pending = String(pending);
    fetch(form.dataset.rateUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        token: form.dataset.token,
        item: form.dataset.item,
        layer: question.dataset.layer,
        criterion: question.dataset.criterion,
        score: Number(input.value),
      }),
    })
      .then(function (resp) {
        return resp.json().then(function (body) {
          if (!resp.ok) throw new Error(body.error || resp.statusText);
          show("Saved (" + body.items_done + " of " + body.items_total + " images complete).", false);
        });
      })
      .catch(function (err) {
        show("Not saved: " + err.message + ". Your answer will be sent again with Next.", true);
      })
      .finally(function () {
        pending -= 1;
        form.dataset.pending = String(pending);
      });
  });
})();
