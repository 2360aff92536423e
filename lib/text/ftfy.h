/* ftfy.h — ftfy.fix_text (ftfy 6.3.1, default TextFixerConfig) and Python's
 * html.unescape, the text clean-up CLIP's SimpleTokenizer runs first.
 *
 * fix_text works segment by segment (lines, cut at 1,000,000 code points);
 * HTML entities are decoded until a segment holding '<' has been seen.  Each
 * segment is fixed by repeating, until nothing changes: unescape_html,
 * fix_encoding (mojibake repair: text that was UTF-8 but was decoded as
 * Latin-1, sloppy windows-1250/1/2/3/4/7, ISO-8859-2, MacRoman or cp437 is
 * encoded back and decoded as UTF-8 — or CESU-8 / Java's modified UTF-8 —
 * when ftfy's "badness" heuristic finds mojibake; with restore_byte_a0,
 * replace_lossy_sequences, decode_inconsistent_utf8 and the C1-control
 * fixes), fix_c1_controls, fix_latin_ligatures, fix_character_width,
 * uncurl_quotes, fix_line_breaks, fix_surrogates, remove_terminal_escapes,
 * remove_control_chars and NFC.  The character classes come from ftfy's own
 * tables (lib/text/ftfy_tables.h, made by tools/gen_ftfy_tables.py). */
#ifndef L2_FTFY_H
#define L2_FTFY_H

#include <stddef.h>
#include <stdint.h>

/* On code points: *v (n entries, malloc'd, capacity *cap) is replaced by
 * the result (again malloc'd; *n and *cap updated). */
void l2_ftfy_fix_text_u32(uint32_t **v, size_t *n, size_t *cap);
void l2_ftfy_fix_encoding_u32(uint32_t **v, size_t *n, size_t *cap); /* ftfy.fix_encoding */
void l2_html_unescape_u32(uint32_t **v, size_t *n, size_t *cap);     /* html.unescape */
int l2_ftfy_is_bad(const uint32_t *text, size_t n);                  /* ftfy.badness.is_bad */

/* On UTF-8: a malloc'd, NUL-terminated result (its length in *outlen, as
 * it may hold U+0000), or NULL when TEXT (len bytes) is not valid UTF-8. */
char *l2_ftfy_fix_text(const char *text, size_t len, size_t *outlen);
char *l2_ftfy_fix_encoding(const char *text, size_t len, size_t *outlen);

#endif
