//! The C ABI: every `extern "C"` item lives here and nowhere else.
