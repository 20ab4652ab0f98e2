{
  "targets": [
    {
      "target_name": "mandate_peercred",
      "sources": ["native/peercred.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"],
      "conditions": [["OS!='linux'", {"type": "none", "sources!": ["native/peercred.c"]}]]
    }
  ]
}
