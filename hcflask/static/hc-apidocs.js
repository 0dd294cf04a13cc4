// The /api page: Swagger UI (vendored, hcflask/static/vendor/swagger-ui) drawing
// /api/v1/openapi.json.  validatorUrl null: it would otherwise send the document
// to validator.swagger.io; nothing leaves the machine.
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({
    url: root.dataset.spec, domNode: root, validatorUrl: null, deepLinking: false,
    docExpansion: "list", defaultModelsExpandDepth: 0, tryItOutEnabled: false,
  });
});
