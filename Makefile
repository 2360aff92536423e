# l2 — Lafite2 text-to-image as small Unix tools.
#
#   make            build lib/ into libl2.a, every tools/l2-*.c into $(BUILD)/bin, the tests
#   make check      build, then run the C unit tests and BATS tests (nothing installed)
#   make test       install what is missing (tools/install-deps.sh test), then make check
#   make test SAN=1 the same under ASan + UBSan (separate build directory)
#   make check-gpu  the CUDA SGEMM offload against OpenBLAS (needs a device; fails without)
#   make demo       the bundled default: emoji dataset end to end (see README)
#   make fuzz       build the libFuzzer harnesses (clang, ASan+UBSan) and run each
#                   for FUZZ_SECONDS (default 60); make test replays their corpora
#   make bench      side-by-side benchmarks against PyTorch / faiss
#   make goldens    regenerate reference outputs with python3-torch (not needed by tests)
#   make install PREFIX=/usr/local
#
# Switches: CUDA=0|1 (default: 1 when nvcc is found), CUDA_ARCH=sm_XX (default native),
# MPI=0|1 (default: 1 when mpicc is found), SAN=1, BUILD=dir, DEBUG=1,
# FUZZ=1 (clang + libFuzzer instrumentation, build-fuzz/; what make fuzz uses).

SHELL    := /bin/bash
PREFIX   ?= /usr/local
SAN      ?= 0
FUZZ     ?= 0
ifeq ($(FUZZ),1)
BUILD    ?= build-fuzz
CC       := clang-14
CUDA     := 0
MPI      := 0
else ifeq ($(SAN),1)
BUILD    ?= build-san
CUDA     := 0
# MPI_Init leaks under LeakSanitizer (Open MPI's own allocations)
MPI      := 0
else
BUILD    ?= build
endif

NVCC     ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
CUDA     ?= $(if $(NVCC),1,0)
MPICC    ?= $(shell command -v mpicc 2>/dev/null)
MPI      ?= $(if $(MPICC),1,0)

PKGS     := libpng libjpeg openblas lmdb zlib jansson
PKG_OK   := $(shell pkg-config --exists $(PKGS) 2>/dev/null && echo yes)
ifeq ($(PKG_OK),yes)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
else
PKG_CFLAGS := -I/usr/include/x86_64-linux-gnu/openblas-pthread
PKG_LIBS   := -lpng -ljpeg -lopenblas -llmdb -lz -ljansson
endif

CC       ?= cc
OPT      ?= -O2
ifeq ($(DEBUG),1)
OPT      := -O0
endif
# -ffp-contract=off: PIL's and PyTorch's reference arithmetic is not fused;
# matching them bit for bit needs the same rounding.
CFLAGS   ?= $(OPT) -g -march=native -ffp-contract=off
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wshadow -Werror=implicit-function-declaration -pthread -MMD -MP
CPPFLAGS += -Ilib $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS) -lm -pthread
ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif
ifeq ($(FUZZ),1)
# Checksums are computed but not enforced, so that mutated checkpoints reach
# the code behind the check (libFuzzer's convention for this switch).
CFLAGS   += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
	    -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
LDFLAGS  += -fsanitize=address,undefined
endif

# lib/ is grouped by concern (lib/README.md): core io text nn models method, plus cuda/.
LIB_SRC  := $(filter-out lib/mpi/%,$(wildcard lib/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
ifeq ($(CUDA),1)
$(info ✓ nvcc found ($(NVCC)): building the CUDA SGEMM offload, libl2cuda.so (CUDA=0 to disable))
# The offload (lib/cuda/device.cu: cuBLAS SGEMM with per-call copies) becomes
# libl2cuda.so beside the programs, loaded on first use (lib/core/device.c), so
# tools start fast and run where CUDA is absent.
CUDA_HOME  ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CU_SRC     := $(wildcard lib/cuda/*.cu)
CU_OBJ     := $(CU_SRC:%.cu=$(BUILD)/%.o)
CUDA_SO    := $(BUILD)/bin/libl2cuda.so
CPPFLAGS   += -DL2_CUDA
LDLIBS     += -ldl
# native: the GPU of this machine; without one nvcc warns and falls back to its
# default architecture (with PTX, which newer GPUs compile at load time).
CUDA_ARCH  ?= native
NVCCFLAGS  ?= -O2 -std=c++17 -arch=$(CUDA_ARCH) -Xcompiler -fPIC
else
$(info ✗ CUDA off: CPU-only build (--device cuda will report that it is unavailable))
endif

ifeq ($(MPI),1)
$(info ✓ mpicc found ($(MPICC)): building libl2mpi.so for data-parallel training (MPI=0 to disable))
# Only lib/mpi includes mpi.h; it becomes libl2mpi.so beside the programs,
# loaded by lib/core/dist.c when a launcher starts several ranks, so tools
# start fast and a single process never touches MPI.  mpicc compiles it, so
# Open MPI and MPICH alike.
MPI_SO     := $(BUILD)/bin/libl2mpi.so
CPPFLAGS   += -DL2_MPI
LDLIBS     += -ldl
else
$(info ✗ MPI off: single-process training only (mpirun -np P refuses to start))
endif

TOOLS    := $(patsubst tools/%.c,%,$(wildcard tools/l2-*.c))
BINS     := $(TOOLS:%=$(BUILD)/bin/%)
TEST_SRC := $(wildcard tests/c/test_*.c)
TESTS    := $(TEST_SRC:tests/c/%.c=$(BUILD)/tests/%)
# Fuzz harnesses (tests/fuzz/fuzz_NAME.c): a replay driver in every build,
# the libFuzzer binary in FUZZ=1 builds.
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
REPLAYS  := $(FUZZ_NAMES:%=$(BUILD)/fuzz/replay-%)
FUZZERS  := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz-%)
FUZZ_SECONDS ?= 60
# OpenAI CLIP's BPE vocabulary, shipped (lib/text/vocab/README.md).  The build
# puts it where the install does, relative to the programs (../share/l2/), so
# the tools find it from the build tree and from PREFIX alike.
VOCAB_SRC := lib/text/vocab/bpe_simple_vocab_16e6.txt.gz
VOCAB     := $(BUILD)/share/l2/bpe_simple_vocab_16e6.txt.gz

# Rebuild everything when the compiler, flags or CUDA switch change.
FLAGS_NOW := $(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $(LDLIBS) CUDA=$(CUDA) MPI=$(MPI)
FLAGS_OLD := $(shell cat $(BUILD)/.flags 2>/dev/null)
ifneq ($(strip $(FLAGS_NOW)),$(strip $(FLAGS_OLD)))
$(shell mkdir -p $(BUILD) && echo '$(FLAGS_NOW)' > $(BUILD)/.flags)
endif

.PHONY: all deps test check check-gpu unit bats bench demo goldens install uninstall clean experiment-fewshot experiment-diffusion fuzz fuzzers
all: $(BUILD)/libl2.a $(BINS) $(TESTS) $(REPLAYS) $(CUDA_SO) $(MPI_SO) $(VOCAB)

$(VOCAB): $(VOCAB_SRC)
	@mkdir -p $(@D)
	cp $< $@

$(BUILD)/lib/%.o: lib/%.c $(BUILD)/.flags
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/lib/cuda/%.o: lib/cuda/%.cu $(BUILD)/.flags
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -Ilib -c $< -o $@

$(CUDA_SO): $(CU_OBJ)
	@mkdir -p $(@D)
	$(NVCC) -shared $^ -o $@ -L$(CUDA_HOME)/lib64 -Xlinker -rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart

$(MPI_SO): lib/mpi/dist_mpi.c $(BUILD)/.flags
	@mkdir -p $(@D)
	$(MPICC) $(filter-out -fsanitize% -MMD -MP,$(CFLAGS)) -fPIC -shared $< -o $@

$(BUILD)/libl2.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/%: tools/%.c $(BUILD)/libl2.a $(BUILD)/.flags
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $< -o $@ $(BUILD)/libl2.a $(LDLIBS)

$(BUILD)/tests/%: tests/c/%.c tests/c/check.h $(BUILD)/libl2.a $(BUILD)/.flags
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/c $(CFLAGS) $(LDFLAGS) $< -o $@ $(BUILD)/libl2.a $(LDLIBS)

$(BUILD)/fuzz/%.o: tests/fuzz/%.c $(BUILD)/.flags
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/fuzz $(CFLAGS) -c $< -o $@

$(BUILD)/fuzz/replay-%: $(BUILD)/fuzz/fuzz_%.o $(BUILD)/fuzz/fuzz.o $(BUILD)/fuzz/replay.o $(BUILD)/libl2.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/fuzz/fuzz-%: $(BUILD)/fuzz/fuzz_%.o $(BUILD)/fuzz/fuzz.o $(BUILD)/libl2.a
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) $^ -o $@ $(LDLIBS)

# The model-file seeds (tests/fuzz/seeds.py runs it).
$(BUILD)/fuzz/model-seeds: $(BUILD)/fuzz/model_seeds.o $(BUILD)/libl2.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

fuzzers: $(FUZZERS)
.SECONDARY: $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%.o) $(BUILD)/fuzz/fuzz.o $(BUILD)/fuzz/replay.o $(BUILD)/fuzz/model_seeds.o

# Build the harnesses with libFuzzer and run each for FUZZ_SECONDS
# (tests/fuzz/run.sh; FUZZ_JOBS=2 runs two at once).
fuzz:
	@tools/install-deps.sh fuzz
	@$(MAKE) --no-print-directory FUZZ=1 fuzzers
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh build-fuzz

deps:
	@tools/install-deps.sh test

# check builds and tests; test first installs what the tests need (as root on a
# fresh machine: apt-get), so that a plain `make check` never changes the system.
check: all
	@BUILD=$(BUILD) SAN=$(SAN) tests/run.sh

test: deps
	@$(MAKE) --no-print-directory check

check-gpu: all
	@BUILD=$(BUILD) tests/run.sh --gpu

unit: all
	@BUILD=$(BUILD) tests/run.sh --unit-only

bats: all
	@BUILD=$(BUILD) tests/run.sh --bats-only

bench:
	@tools/install-deps.sh bench
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) bench/run.sh

goldens:
	@tools/install-deps.sh goldens
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/ref/make_all.sh

demo:
	@tools/install-deps.sh demo
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -f pipelines/demo.mk BUILD=$(BUILD)

experiment-fewshot:
	@tools/install-deps.sh demo
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -f pipelines/demo.mk BUILD=$(BUILD) experiment-fewshot

experiment-diffusion:
	@tools/install-deps.sh demo
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -f pipelines/demo.mk BUILD=$(BUILD) experiment-diffusion

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/l2
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	$(if $(CUDA_SO),install -d $(DESTDIR)$(PREFIX)/lib/l2 && install -m 755 $(CUDA_SO) $(DESTDIR)$(PREFIX)/lib/l2/)
	$(if $(MPI_SO),install -d $(DESTDIR)$(PREFIX)/lib/l2 && install -m 755 $(MPI_SO) $(DESTDIR)$(PREFIX)/lib/l2/)
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(PREFIX)/share/man/man1/
	install -d $(DESTDIR)$(PREFIX)/share/man/man7 && install -m 644 $(wildcard man/*.7) $(DESTDIR)$(PREFIX)/share/man/man7/
	install -m 644 $(VOCAB_SRC) $(DESTDIR)$(PREFIX)/share/l2/
	install -m 644 lib/text/vocab/LICENSE $(DESTDIR)$(PREFIX)/share/l2/bpe_simple_vocab_16e6.LICENSE

uninstall:
	rm -f $(TOOLS:%=$(DESTDIR)$(PREFIX)/bin/%)
	rm -f $(patsubst man/%,$(DESTDIR)$(PREFIX)/share/man/man1/%,$(wildcard man/*.1))
	rm -f $(patsubst man/%,$(DESTDIR)$(PREFIX)/share/man/man7/%,$(wildcard man/*.7))
	rm -f $(DESTDIR)$(PREFIX)/share/l2/bpe_simple_vocab_16e6.txt.gz $(DESTDIR)$(PREFIX)/share/l2/bpe_simple_vocab_16e6.LICENSE
	rm -f $(DESTDIR)$(PREFIX)/lib/l2/libl2cuda.so $(DESTDIR)$(PREFIX)/lib/l2/libl2mpi.so
	rmdir $(DESTDIR)$(PREFIX)/share/l2 $(DESTDIR)$(PREFIX)/lib/l2 2>/dev/null || true

clean:
	rm -rf build build-san build-*

-include $(LIB_OBJ:.o=.d) $(BINS:=.d) $(TESTS:=.d) $(wildcard $(BUILD)/fuzz/*.d)
