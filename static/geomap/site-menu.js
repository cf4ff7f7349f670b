/* geomap site menu: on narrow screens the header's links fold behind the Menu button,
 * a disclosure (<button aria-expanded aria-controls="site-nav">): Enter or Space opens
 * and closes it (a native button), Escape closes it and gives the focus back to the button.
 *
 * Loaded in <head>, not deferred: the "has-menu" class is on <html> before the header is
 * drawn, so the links are folded from the first paint (no layout jump). Without this
 * script the class is missing, the button stays hidden and the links are shown. Which
 * screens fold the links is decided by the CSS alone (site.css, "The site menu"). */
(function () {
  "use strict";
  document.documentElement.classList.add("has-menu");

  function setUp() {
    var button = document.getElementById("menu-toggle");
    var panel = button && document.getElementById(button.getAttribute("aria-controls"));
    if (!panel) return;
    function isOpen() { return button.getAttribute("aria-expanded") === "true"; }
    function setOpen(open) { button.setAttribute("aria-expanded", open ? "true" : "false"); }
    button.addEventListener("click", function () { setOpen(!isOpen()); });
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape" || !isOpen()) return;
      var focusInside = panel.contains(document.activeElement);
      setOpen(false);
      if (focusInside) button.focus();  // the focused link is being hidden
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUp);
  else setUp();
})();
