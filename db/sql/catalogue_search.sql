-- Accent- and case-folding for the condition catalogue's search (migration 0011a).
-- unaccent() is only STABLE (its dictionary could change), so a wrapper naming the
-- dictionary explicitly is declared IMMUTABLE: it may then feed a stored column and
-- a trigram index. Both extensions are trusted and ship with Debian's server package.
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE OR REPLACE FUNCTION geomap_fold(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, value)) $$;
