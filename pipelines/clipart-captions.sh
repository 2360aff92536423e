#!/bin/sh
# clipart-captions.sh [DIR] — captions for a folder of clip art laid out in
# category folders (Debian's openclipart-png by default), as the
# path<TAB>caption TSV that l2-dataset build --captions and
# pipelines/workflow.mk's CAPTIONS= read.  Paths are relative to DIR, one
# line per image, in bytewise path order (LC_ALL=C), on stdout.
#
#   pipelines/clipart-captions.sh > clipart.tsv          /usr/share/openclipart/png
#   pipelines/clipart-captions.sh ~/art > art.tsv        any folder laid out the same way
#
# Environment (optional):
#   PREFIX    words before the title (default "a drawing of"; empty for none)
#   CONTEXT   how many category folders follow the title (default 2: the
#             innermost folder and the top one; 0 = none)
#
# How a caption is made, from food/fruit/red_apple_nicu_buculei_01.png:
#   title     the file name without extension; camelCase split; '_', '-', '.',
#             '+' and spaces separate words; lower-cased; words holding a digit
#             dropped (numbering, sizes such as 89pt35step); a trailing author
#             name dropped (openclipart names files title_author_NN, often
#             truncated: the authors below were found by counting name
#             endings that recur across folders); trailing one-letter words
#             (variant marks such as _r) dropped; "bw" read as "black and
#             white"                                     -> "red apple"
#   context   the innermost folder, then the top folder, '_' and '-' as spaces;
#             a folder whose words are all in the title already, or a catch-all
#             (unsorted, special), gives way to the one above it -> "fruit, food"
#   caption   PREFIX title, context      -> "a drawing of red apple, fruit, food"
#   A name with no word left gives "PREFIX clip art, context" (counted as
#   untitled on stderr).
# Symbolic links are followed, as l2-dataset build follows them: an image
# linked into a second category gets that category's caption too (under the
# link's path).  Files that are not readable, empty, not PNG/JPEG data by
# their first bytes, or PNGs over the tools' pixel limit (about 179 million
# pixels, refused as decompression bombs) are skipped and counted on stderr;
# a file that passes these checks yet fails to decode (truncated, corrupt)
# is caught by l2-dataset build, or left out by its --skip-bad.  Exit 1 when DIR is missing or holds no usable image.
set -eu

me=clipart-captions.sh
dir=${1:-/usr/share/openclipart/png}
prefix=${PREFIX-a drawing of}
context=${CONTEXT:-2}

[ $# -le 1 ] || { echo "usage: $me [DIR] > captions.tsv" >&2; exit 2; }
case $dir in -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' ; exit 0 ;; esac
case $context in '' | *[!0-9]*) echo "$me: CONTEXT must be a count, not '$context'" >&2; exit 2 ;; esac
[ -d "$dir" ] || { echo "$me: $dir: no such folder" >&2; exit 1; }
[ -r "$dir" ] && [ -x "$dir" ] || { echo "$me: $dir: cannot read the folder" >&2; exit 1; }

# every entry with an image name (links followed; dangling ones included, to be counted),
# kept when readable and PNG/JPEG by its first bytes, and a PNG within the tools'
# pixel limit (L2_IMAGE_MAX_PIXELS: larger ones are refused as decompression bombs)
LC_ALL=C find -L "$dir" -mindepth 1 \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' \) ! -type d -print 2>/dev/null |
	LC_ALL=C sort |
	perl -e '
		my $max = 2 * int(1024 * 1024 * 1024 / 4 / 3);
		my $skipped = 0;
		while (my $path = <STDIN>) {
			chomp $path;
			my ($f, $head) = (undef, "");
			my $ok = open($f, "<:raw", $path) && defined(read($f, $head, 24)) && length($head) >= 3;
			close $f if $f;
			if ($ok && substr($head, 0, 8) eq "\x89PNG\r\n\x1a\n") {
				my ($w, $h) = length($head) == 24 ? unpack("NN", substr($head, 16, 8)) : (0, 0);
				$ok = $w > 0 && $h > 0 && $w * $h <= $max;
			} elsif ($ok) {
				$ok = substr($head, 0, 3) eq "\xff\xd8\xff";
			}
			if ($ok) { print "$path\n" } else { $skipped++ }
		}
		printf STDERR "%s: %d file%s skipped (unreadable, empty, not PNG/JPEG data, or too large)\n",
			$ARGV[0], $skipped, $skipped == 1 ? "" : "s" if $skipped;
	' "$me" |
	LC_ALL=C awk -v dir="$dir" -v prefix="$prefix" -v ctxn="$context" -v me="$me" '
BEGIN {
	# Openclipart authors whose names end file names (title_author_NN),
	# found by counting trailing word pairs that recur across folders; file
	# names were cut to about 31 characters, so the last word may be a prefix.
	na = split("juliane krug|benji park|architetto francesco rollandin|francesco rollandin|nicu buculei|" \
		"jarno vasamaa|jon phillips|linda kim|jean victor balin|victor balin|enrique meza|matthew gates|" \
		"luiz araujo|dan gerhards|susan park|frederic moser|dave pena|matt todd|anthony liekens|aj ashton|" \
		"yen cheng|mauro olivo|patricia fidi|roman bertle|yves guillou|jonathan dietrich|jakob chaosinfarkt|" \
		"guillaume boitel|costea bogdan|charles mccolm|anton yu|nathan eady|leif lodahl|christoph brill|" \
		"ruairi hanna|andy fitzsimon|shandy brown|richard torkar|marcelo caiafa|joel montes de oca|" \
		"daniel steele|andreas nilsson|marcelo staudt|cedric bosdonnat|brice boyer|yogesh kanitkar|" \
		"tess brady|stuart moore|stepan klimov|steffen gluck|stefan illner|seth yastrov|ruud steltenpool|" \
		"petri lummemaki|orlando karam|mirjam meijer|mike honeychurch|michael tunnicliffe|lauris kaplinski|" \
		"kurt cagle|kilian valkhof|joeseph teed|james kilfiger|james birkett|hans deragon|gabrielle nowicki|" \
		"fco andrade|etienne bersac|didier fabert|dave reckoning|celso junior|arjen meijer|alex kuehne|" \
		"alex fernandez|alejandro tejada|lumen design studio|fudriot omic|aubanel monnier|bw ganson|" \
		"sergio luiz araujo|toh yen cheng|mike sm|jean vitor balin|gerald g|ger|gera|fra|yve|mo|md|peterm|bwh|zazou|mateya|romus|abiclipart|mimooh|uliphant|anita|petr|ganson|benji|jonadab|nurbldoff|nurbl|gerald", author, "|")
	for (i = 1; i <= na; i++) nw[i] = split(author[i], aw_tmp, " ")
	for (i = 1; i <= na; i++) { split(author[i], aw_tmp, " "); for (j = 1; j <= nw[i]; j++) aw[i, j] = aw_tmp[j] }
	n = 0; untitled = 0
	strip = dir; sub(/\/+$/, "", strip)
}
function words(s, t,   out, i, k, c, prev) {
	# camelCase: a lower-case letter followed by a capital starts a word
	out = ""; prev = ""
	for (i = 1; i <= length(s); i++) {
		c = substr(s, i, 1)
		if (prev ~ /[a-z]/ && c ~ /[A-Z]/) out = out " "
		out = out c; prev = c
	}
	out = tolower(out)
	gsub(/[^a-z0-9]+/, " ", out)
	k = split(out, raw, " "); n_t = 0
	for (i = 1; i <= k; i++) {
		# numbering stuck to a word goes (arrow03, home0); a word still holding a digit goes whole (89pt35step)
		sub(/^[0-9]+/, "", raw[i]); sub(/[0-9]+$/, "", raw[i])
		if (raw[i] != "" && raw[i] !~ /[0-9]/) t[++n_t] = raw[i]
	}
	return n_t
}
# does the author i end the words t[1..m] at position s (last word may be cut short)?
function author_at(t, m, s, i,   j, w) {
	if (m - s + 1 > nw[i]) return 0
	# fewer words than the name (a cut-off file name): at least two, or a long first one
	if (m - s + 1 < nw[i] && m == s && length(t[s]) < 5) return 0
	for (j = s; j <= m; j++) {
		w = aw[i, j - s + 1]
		if (j < m) { if (t[j] != w) return 0 }
		else if (t[j] != w && !(length(t[j]) >= (j > s ? 2 : 5) && substr(w, 1, length(t[j])) == t[j])) return 0
	}
	return 1
}
function title(name,   t, m, s, i, out, again) {
	delete t
	m = words(name, t)
	do {
		again = 0
		while (m > 1 && length(t[m]) == 1) { m--; again = 1 }
		for (s = 2; s <= m && !again; s++)
			for (i = 1; i <= na; i++)
				if (author_at(t, m, s, i)) { m = s - 1; again = 1; break }
	} while (again)
	if (m == 1 && length(t[1]) == 1) m = 0
	out = ""
	for (i = 1; i <= m; i++) out = out (i > 1 ? " " : "") (t[i] == "bw" ? "black and white" : t[i])
	return out
}
function folder(p,   f) {
	f = tolower(p); gsub(/[-_ ]+/, " ", f); sub(/^ /, "", f); sub(/ $/, "", f)
	return f
}
# a folder worth naming: not empty, not a catch-all, not all in the title already
function useful(p, ttl,   f) {
	f = folder(p)
	return f != "" && f != "unsorted" && f != "special" && !covered(f, ttl)
}
function covered(fold, ttl,   f, k, i, have) {
	k = split(ttl, f, " "); delete have
	for (i = 1; i <= k; i++) have[f[i]] = 1
	k = split(fold, f, " ")
	for (i = 1; i <= k; i++) if (!(f[i] in have)) return 0
	return 1
}
{
	path = $0
	rel = substr(path, length(strip) + 2)
	k = split(rel, part, "/")
	name = part[k]; sub(/\.[^.]*$/, "", name)
	ttl = title(name)
	if (ttl == "") { untitled++; ttl = "clip art" }
	# the innermost folder that says something the title does not, then the top one
	ctx = ""; used = 0; last = ""; nf = 0
	for (j = k - 1; j > 1 && !nf; j--) if (useful(part[j], ttl)) order[++nf] = j
	if (k > 1) order[++nf] = 1
	for (j = 1; j <= nf && used < ctxn; j++) {
		f = folder(part[order[j]])
		if (f != last && useful(part[order[j]], ttl)) { ctx = ctx ", " f; used++; last = f }
	}
	print rel "\t" (prefix == "" ? "" : prefix " ") ttl ctx
	n++
}
END {
	printf "%s: %d captions, %d untitled (category only)\n", me, n, untitled > "/dev/stderr"
	if (!n) { printf "%s: %s: no usable image\n", me, dir > "/dev/stderr"; exit 1 }
}'
