// The API reference page: Swagger UI over our own OpenAPI document (no CDN, no inline script).
(function () {
  "use strict";
  var holder = document.getElementById("api-reference");
  window.SwaggerUIBundle({
    url: holder.getAttribute("data-document"),
    domNode: holder,
    deepLinking: false,  // its links sit inside the operation buttons (nested controls)
    validatorUrl: null,
    tryItOutEnabled: false,
    onComplete: fitIntoPage,
  });

  // Our page has the <h1>: Swagger's title becomes level 2, so its tag headings (<h3>)
  // follow in order; its information block (outside Swagger's <main>) becomes a region.
  function fitIntoPage() {
    var title = holder.querySelector(".info .title");
    if (title) {
      title.setAttribute("role", "heading");
      title.setAttribute("aria-level", "2");
    }
    var info = holder.querySelector(".information-container");
    if (info) {
      info.setAttribute("role", "region");
      info.setAttribute("aria-label", window.geomap.t("api.about"));
    }
  }
})();
