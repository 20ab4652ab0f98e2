/**
 * Functions known to be free of side effects: computing, formatting, reading the catalog.
 * A call of anything else — a user-defined function, an extension's, or one of the
 * built-ins that act (pg_terminate_backend, pg_read_file, lo_*, dblink*, set_config,
 * nextval, advisory locks, …) — makes the statement a "function" statement and names the
 * function, so a role must allow it explicitly. Being on this list is a claim about the
 * built-in under pg_catalog, so a schema-qualified call elsewhere is never safe.
 */
const SAFE = new Set(
  `
  abs ceil ceiling floor round trunc sign sqrt cbrt exp ln log log10 power pow mod div pi random degrees radians
  sin cos tan asin acos atan atan2 sinh cosh tanh gcd lcm width_bucket scale min_scale trim_scale factorial
  count sum avg min max bool_and bool_or every string_agg array_agg json_agg jsonb_agg json_object_agg jsonb_object_agg
  stddev stddev_pop stddev_samp variance var_pop var_samp corr covar_pop covar_samp regr_slope regr_intercept
  percentile_cont percentile_disc mode rank dense_rank row_number ntile lag lead first_value last_value nth_value
  cume_dist percent_rank bit_and bit_or bit_xor range_agg range_intersect_agg any_value
  lower upper initcap length char_length character_length octet_length bit_length substr substring position strpos
  trim btrim ltrim rtrim lpad rpad replace reverse repeat left right split_part concat concat_ws format translate
  ascii chr md5 sha224 sha256 sha384 sha512 encode decode to_hex quote_ident quote_literal quote_nullable regexp_replace
  regexp_match regexp_matches regexp_split_to_array regexp_split_to_table regexp_count regexp_instr regexp_like regexp_substr
  starts_with string_to_array string_to_table array_to_string unistr normalize casefold
  now current_timestamp clock_timestamp statement_timestamp transaction_timestamp timeofday localtime localtimestamp
  date_trunc date_part extract age make_date make_time make_timestamp make_timestamptz make_interval to_timestamp
  to_char to_date to_number justify_days justify_hours justify_interval isfinite date_bin timezone
  coalesce nullif greatest least
  array_length array_lower array_upper array_dims array_ndims array_position array_positions array_append array_prepend
  array_cat array_remove array_replace cardinality unnest generate_series generate_subscripts array_fill trim_array
  json_build_object jsonb_build_object json_build_array jsonb_build_array to_json to_jsonb row_to_json array_to_json
  json_each jsonb_each json_each_text jsonb_each_text json_array_elements jsonb_array_elements json_array_elements_text
  jsonb_array_elements_text json_extract_path jsonb_extract_path json_extract_path_text jsonb_extract_path_text
  json_object_keys jsonb_object_keys json_typeof jsonb_typeof jsonb_set jsonb_insert jsonb_pretty jsonb_strip_nulls
  json_strip_nulls jsonb_path_query jsonb_path_exists jsonb_path_match jsonb_path_query_array jsonb_path_query_first
  json_array_length jsonb_array_length json_populate_record jsonb_populate_record json_to_record jsonb_to_record
  version current_database current_schema current_schemas current_user session_user current_setting current_query
  pg_backend_pid inet_client_addr inet_client_port inet_server_addr inet_server_port pg_postmaster_start_time
  pg_conf_load_time pg_is_in_recovery pg_current_wal_lsn txid_current_if_assigned pg_current_xact_id_if_assigned
  has_table_privilege has_column_privilege has_schema_privilege has_database_privilege has_function_privilege
  has_sequence_privilege has_any_column_privilege pg_has_role row_security_active
  format_type pg_get_userbyid pg_get_expr pg_get_constraintdef pg_get_indexdef pg_get_viewdef pg_get_triggerdef
  pg_get_functiondef pg_get_function_arguments pg_get_function_result pg_get_function_identity_arguments
  pg_get_ruledef pg_get_statisticsobjdef pg_get_partkeydef pg_get_serial_sequence pg_get_keywords
  pg_table_is_visible pg_type_is_visible pg_function_is_visible pg_opclass_is_visible pg_collation_is_visible
  pg_ts_config_is_visible pg_statistics_obj_is_visible pg_operator_is_visible pg_conversion_is_visible
  obj_description col_description shobj_description pg_encoding_to_char pg_char_to_encoding
  pg_relation_size pg_total_relation_size pg_table_size pg_indexes_size pg_database_size pg_size_pretty pg_column_size
  pg_relation_is_publishable pg_partition_root pg_partition_tree pg_partition_ancestors pg_relation_filenode
  pg_typeof pg_input_is_valid array_to_tsvector to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery
  ts_rank ts_rank_cd ts_headline setweight numnode querytree
  gen_random_uuid uuidv4 uuidv7 int4 int8 int2 float4 float8 numeric text varchar bool date
  pg_get_constraintdef pg_get_indexdef pg_collation_for pg_tablespace_location pg_describe_object pg_identify_object
  array_in textin int4in pg_stat_get_numscans
  `
    .split(/\s+/)
    .filter(Boolean),
);

/** `funcname` as the parser gives it: `[schema,] name`, already case-folded unless quoted. */
export function isSideEffectFree(nameParts: string[]): boolean {
  if (nameParts.length === 1) return SAFE.has(nameParts[0]!);
  if (nameParts.length === 2 && nameParts[0] === "pg_catalog") return SAFE.has(nameParts[1]!);
  return false;
}
