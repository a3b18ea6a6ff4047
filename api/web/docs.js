// Starts Swagger UI (served from this server: /docs/swagger-ui-bundle.js) on the API's
// own description, /openapi.json.
"use strict";

window.addEventListener("load", () => {
  window.ui = window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
