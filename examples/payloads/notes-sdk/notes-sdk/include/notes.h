/* Notes C API (Roleout example) */
