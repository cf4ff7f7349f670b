"""Browser probes shared by the benchmarks."""

# Records when the first marker is added to the page, at the next animation frame
# (the frame that paints it), in ms since navigation start.
FIRST_MARKERS_PROBE = """
new MutationObserver(function (mutations, observer) {
  if (document.querySelector('.geomap-count')) {
    observer.disconnect();
    requestAnimationFrame(function () { window.__geomapFirstMarkers = performance.now(); });
  }
}).observe(document, {childList: true, subtree: true});
"""
