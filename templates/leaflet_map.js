{#- The script that builds a Leaflet map (geomap.web.maps.map_parts; its head and
    element: leaflet_map.html), as folium writes it. ``m`` is a geomap.web.maps.LeafletMap:
    ids and function names are our constants, options go through tojson (HTML-safe). -#}
{% macro script(m) %}
    var map_{{ m.map_id }} = L.map("map_{{ m.map_id }}", {{ m.options|tojson }});
{%- if m.control_scale %}
    L.control.scale().addTo(map_{{ m.map_id }});
{%- endif %}
{%- if m.tile_layer %}
    var tile_layer_{{ m.tile_layer.layer_id }} = L.tileLayer({{ m.tile_layer.url|tojson }}, {{ m.tile_layer.options|tojson }});
    tile_layer_{{ m.tile_layer.layer_id }}.addTo(map_{{ m.map_id }});
{%- endif %}
{%- if m.cluster %}
    var marker_cluster_{{ m.cluster.cluster_id }} = L.markerClusterGroup({{ m.cluster.options|tojson }});
    marker_cluster_{{ m.cluster.cluster_id }}.options.iconCreateFunction = function (cluster) {
        return geomap.clusterIcon(cluster);
    };
    marker_cluster_{{ m.cluster.cluster_id }}.addTo(map_{{ m.map_id }});
{%- endif %}
    {{ m.call }}(map_{{ m.map_id }},{% if m.cluster %} marker_cluster_{{ m.cluster.cluster_id }},{% endif %}
        {{ m.call_options|tojson }});
{% endmacro %}
