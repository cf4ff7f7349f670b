// The API reference page: Swagger UI over our own OpenAPI document (no CDN, no inline script).
(function () {
  "use strict";
  var holder = document.getElementById("api-reference");
  window.SwaggerUIBundle({
    url: holder.getAttribute("data-document"),
    domNode: holder,
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
  });
})();
