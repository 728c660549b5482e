// The proof form's photo, made small enough on the phone (review 63). A cheap phone's
// camera takes photos of 3 to 8 MB; the server takes at most 5 MB (docs/booking.md). A
// JPEG or PNG over the limit is drawn again, at most 2560 px on its longer side, as a
// JPEG, and that file replaces the chosen one before the form is sent. Without
// JavaScript, or where the browser cannot, the photo goes as chosen and the server
// refuses it beside the field, as before. The words come from the page (messages.py).
(function () {
  "use strict";
  var input = document.getElementById("photo");
  var note = document.getElementById("photo-shrink");
  if (!input || !note || !window.DataTransfer || !window.File || !window.createImageBitmap) {
    return;
  }
  var form = input.form;
  var button = form ? form.querySelector("button[type=submit]") : null;
  var limit = Number(input.getAttribute("data-max-bytes"));
  var LONGEST = 2560;

  function done(text) {
    note.textContent = text;
    if (button) {
      button.disabled = false;
    }
  }

  input.addEventListener("change", function () {
    var file = input.files && input.files[0];
    note.textContent = "";
    if (!file || !(limit > 0) || file.size <= limit || !/^image\/(jpeg|png)$/.test(file.type)) {
      return;
    }
    if (button) {
      button.disabled = true;
    }
    note.textContent = note.getAttribute("data-shrinking");
    // createImageBitmap, not an <img> of a blob: URL, which the page's CSP (img-src
    // 'self') forbids; it turns the photo as its EXIF orientation says
    window.createImageBitmap(file).then(
      function (image) {
        var scale = Math.min(1, LONGEST / Math.max(image.width, image.height));
        var canvas = document.createElement("canvas");
        canvas.width = Math.max(1, Math.round(image.width * scale));
        canvas.height = Math.max(1, Math.round(image.height * scale));
        var context = canvas.getContext("2d");
        if (!context || !canvas.toBlob) {
          done("");
          return;
        }
        context.fillStyle = "#fff"; // a PNG's transparent parts: white, not black
        context.fillRect(0, 0, canvas.width, canvas.height);
        context.drawImage(image, 0, 0, canvas.width, canvas.height);
        canvas.toBlob(
          function (blob) {
            if (!blob || blob.size > limit) {
              done("");
              return;
            }
            var name = file.name.replace(/\.[^.]*$/, "") + ".jpg";
            var list = new DataTransfer();
            list.items.add(new File([blob], name, { type: "image/jpeg" }));
            input.files = list.files;
            done(note.getAttribute("data-shrunk"));
          },
          "image/jpeg",
          0.85
        );
      },
      function () {
        done("");
      }
    );
  });
})();
