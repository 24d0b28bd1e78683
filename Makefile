# libquant — convert, quantize, prune and merge LLM checkpoints, and validate them by running them.
#
# make            libquant.a and every tool into build/
# make help       the list of targets and variables
#
# Feature detection is reported on every run. CUDA code is compiled and linked
# whenever nvcc exists (CUDA=auto), even on a machine without a GPU.

CC       ?= cc
NVCC     ?= $(shell command -v nvcc 2>/dev/null || (test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc))
CUDA     ?= auto
NO_OMP   ?=
DEBUG    ?=
MOREFLAGS ?=
MORELDFLAGS ?=
BUILD    ?= build
PREFIX   ?= /usr/local
SHARED   ?= ../shared/data
V        ?=
Q        := $(if $(filter 1,$(V)),,@)
FUZZ_SECONDS ?= 60

WARNINGS := -Wall -Wextra -Wshadow -Wcast-qual -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wvla -Wformat=2 -Wundef -Wwrite-strings -Wswitch-enum
OPT      := $(if $(filter 1,$(DEBUG)),-O0 -g3 -DLQ_DEBUG=1,-O2 -g)
ARCHFLAGS ?= -march=native
INCLUDES := -Ilibquant/core -Ilibquant -Iformats -Ikernels -Icalib -Itools
CFLAGS   += -std=c11 -D_GNU_SOURCE $(OPT) $(ARCHFLAGS) $(WARNINGS) $(INCLUDES) -MMD -MP $(MOREFLAGS)
LDLIBS   += -lm
LDFLAGS  += $(MORELDFLAGS)

# ---- feature detection ----
ifeq ($(NO_OMP),1)
  $(info ✗ OpenMP disabled (NO_OMP=1))
else
  HAVE_OMP := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo 1)
  ifeq ($(HAVE_OMP),1)
    CFLAGS  += -fopenmp
    LDFLAGS += -fopenmp
    $(info ✓ OpenMP found)
  else
    $(info ✗ OpenMP not found, building single-threaded)
  endif
endif

HAVE_ZLIB   := $(shell echo '\#include <zlib.h>' | $(CC) -E -x c - >/dev/null 2>&1 && echo 1)
HAVE_LIBZIP := $(shell echo '\#include <zip.h>' | $(CC) -E -x c - >/dev/null 2>&1 && echo 1)
HAVE_CUNIT  := $(shell echo '\#include <CUnit/Basic.h>' | $(CC) -E -x c - >/dev/null 2>&1 && echo 1)
$(info $(if $(HAVE_ZLIB),✓ zlib found,✗ zlib not found (make deps)))
$(info $(if $(HAVE_LIBZIP),✓ libzip found,✗ libzip not found (make deps)))
$(info $(if $(HAVE_CUNIT),✓ CUnit found,✗ CUnit not found (make deps)))
LDLIBS := -lzip -lz $(LDLIBS)

ifeq ($(CUDA),0)
  USE_CUDA :=
  $(info ✗ CUDA disabled (CUDA=0))
else ifneq ($(NVCC),)
  USE_CUDA := 1
  $(info ✓ nvcc found ($(NVCC)), building CUDA kernels)
else ifeq ($(CUDA),1)
  $(error CUDA=1 but nvcc was not found)
else
  USE_CUDA :=
  $(info ✗ nvcc not found, CUDA kernels disabled)
endif

ifeq ($(USE_CUDA),1)
  CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
  CUDA_ARCH ?= $(shell nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d '.')
  ifeq ($(CUDA_ARCH),)
    CUDA_ARCH := 90
  endif
  NVCCFLAGS ?= -O2 -g -std=c++17 -arch=sm_$(CUDA_ARCH) $(INCLUDES) -Xcompiler -Wall
  LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcusolver -lcublasLt -lcublas -lcudart -lstdc++
  CUDA_SRC  := $(wildcard kernels/cuda/*.cu)
  CUDA_STUB :=
  $(info   CUDA_ARCH=sm_$(CUDA_ARCH))
else
  CUDA_SRC  :=
  CUDA_STUB := kernels/cuda_stub.c
endif

# ---- sources (basenames are unique across the tree, objects sit flat) ----
LIB_SRC := $(wildcard libquant/core/*.c) $(wildcard formats/*.c) $(wildcard kernels/cpu/*.c) \
           $(CUDA_STUB) $(wildcard calib/*.c) $(wildcard libquant/*.c)
TOOL_SRC := $(wildcard tools/lq_*.c)
TOOLS    := $(patsubst tools/lq_%.c,$(BUILD)/lq-%,$(TOOL_SRC))
CLI_SRC  := tools/cli_util.c
TEST_SRC := $(wildcard tests/test_*.c) tests/run_tests.c
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_TARGETS := $(filter-out fuzz_main,$(patsubst tests/fuzz/%.c,%,$(FUZZ_SRC)))

vpath %.c libquant/core formats kernels/cpu kernels calib libquant tools tests tests/fuzz
vpath %.cu kernels/cuda

OBJ      := $(BUILD)/obj
LIB_OBJ  := $(patsubst %.c,$(OBJ)/%.o,$(notdir $(LIB_SRC))) $(patsubst %.cu,$(OBJ)/%.cu.o,$(notdir $(CUDA_SRC)))
CLI_OBJ  := $(OBJ)/cli_util.o
TEST_OBJ := $(patsubst %.c,$(OBJ)/%.o,$(notdir $(TEST_SRC)))
LIBA     := $(BUILD)/libquant.a

.PHONY: all lib tools test test-run check check-run cuda-test fuzz bench install deps clean help demo format \
        tests-bin fuzz-replay

# objects of the pattern-rule chain are not intermediates to delete
.SECONDARY:

## all: libquant.a and every tool into build/ (default)
all: $(LIBA) $(TOOLS)
lib: $(LIBA)
tools: $(TOOLS)

$(OBJ):
	$(Q)mkdir -p $@

$(OBJ)/%.o: %.c | $(OBJ)
	@echo "  CC    $<"
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(OBJ)/%.cu.o: %.cu | $(OBJ)
	@echo "  NVCC  $<"
	$(Q)$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

$(LIBA): $(LIB_OBJ)
	@echo "  AR    $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/lq-%: $(OBJ)/lq_%.o $(CLI_OBJ) $(LIBA)
	@echo "  LINK  $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/run_tests: $(TEST_OBJ) $(LIBA)
	@echo "  LINK  $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -lcunit $(LDLIBS)

tests-bin: $(BUILD)/run_tests $(TOOLS)

## deps: install missing Debian packages (libzip-dev, zlib1g-dev, libcunit1-dev, sentencepiece, ...)
deps:
	$(Q)./tests/install_deps.sh

## test: build and run the CUnit suites (CPU) and the CLI tests; SUITE=name runs one suite
test: deps
	$(Q)$(MAKE) --no-print-directory test-run

test-run: tests-bin
	$(Q)LQ_SHARED_DATA=$(SHARED) $(BUILD)/run_tests $(SUITE)
	$(Q)LQ_SHARED_DATA=$(SHARED) BUILD=$(BUILD) ./tests/cli/run_cli_tests.sh
	$(Q)LQ_SHARED_DATA=$(SHARED) BUILD=$(BUILD) ./tests/cli/run_gptq_tests.sh
	$(Q)LQ_SHARED_DATA=$(SHARED) BUILD=$(BUILD) ./tests/cli/run_mixed_tests.sh
	$(Q)LQ_SHARED_DATA=$(SHARED) BUILD=$(BUILD) ./tests/cli/run_prune_tests.sh
	$(Q)LQ_SHARED_DATA=$(SHARED) BUILD=$(BUILD) ./tests/interop/run_gguf_check.sh

## check: the pre-push gate: tests again in build-san/ under ASan+UBSan with -Werror (CUDA=0), then the fuzz corpus replay
check: deps
	$(Q)$(MAKE) --no-print-directory BUILD=build-san CUDA=0 ARCHFLAGS= \
	    MOREFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -Werror" \
	    MORELDFLAGS="-fsanitize=address,undefined" check-run

check-run: tests-bin fuzz-replay
	$(Q)ASAN_OPTIONS=detect_leaks=1 LQ_SHARED_DATA=$(SHARED) $(BUILD)/run_tests $(SUITE)
	$(Q)ASAN_OPTIONS=detect_leaks=1 LQ_SHARED_DATA=$(SHARED) BUILD=$(BUILD) ./tests/cli/run_cli_tests.sh
	$(Q)for t in $(FUZZ_TARGETS); do \
	    echo "fuzz replay: $$t"; \
	    ASAN_OPTIONS=detect_leaks=1 $(BUILD)/$${t}_replay tests/fuzz/corpus/$${t#fuzz_} || exit 1; done

fuzz-replay: $(patsubst %,$(BUILD)/%_replay,$(FUZZ_TARGETS))

$(BUILD)/fuzz_%_replay: $(OBJ)/fuzz_%.o $(OBJ)/fuzz_main.o $(LIBA)
	@echo "  LINK  $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

## fuzz: libFuzzer (clang) on each target for FUZZ_SECONDS (default 60) seconds, growing the corpus
fuzz: deps
	$(Q)$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang CUDA=0 NO_OMP=1 ARCHFLAGS= \
	    MOREFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" $(BUILD:build=build-fuzz)/libquant.a
	$(Q)for t in $(FUZZ_TARGETS); do \
	    clang -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined $(INCLUDES) \
	        tests/fuzz/$$t.c build-fuzz/libquant.a -lzip -lz -lm -o build-fuzz/$$t || exit 1; \
	    mkdir -p build-fuzz/corpus-$$t; \
	    build-fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build-fuzz/corpus-$$t tests/fuzz/corpus/$${t#fuzz_} || exit 1; \
	done

## cuda-test: the GPU parity suite (needs a GPU; CUDA-vs-CPU on every CUDA kernel), under compute-sanitizer when present
cuda-test: deps
	$(Q)$(MAKE) --no-print-directory CUDA=1 tests-bin
	$(Q)if [ "$$($(BUILD)/run_tests --cuda-devices)" = 0 ]; then echo "cuda-test: no CUDA device"; exit 1; fi
	$(Q)LQ_SHARED_DATA=$(SHARED) $(BUILD)/run_tests cuda
	$(Q)if command -v compute-sanitizer >/dev/null; then \
	    LQ_SHARED_DATA=$(SHARED) compute-sanitizer --error-exitcode=1 $(BUILD)/run_tests cuda; fi

## bench: benchmarks, each figure as a ratio to a ceiling measured in the same run (not a test)
bench: $(BUILD)/lq-bench
	$(Q)$(BUILD)/lq-bench $(BENCH_ARGS)

## demo: the main job on the bundled real model (convert + inspect stories260K)
demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)./tests/demo.sh $(SHARED)

## install: headers, libquant.a, tools and libquant.pc under PREFIX (default /usr/local)
install: all
	$(Q)mkdir -p $(DESTDIR)$(PREFIX)/include/libquant $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	$(Q)cp libquant/libquant.h libquant/lq_model.h libquant/lq_eval.h libquant/lq_synth.h libquant/core/lq_common.h \
	    libquant/core/lq_json.h libquant/core/lq_qtypes.h formats/lq_formats.h formats/lq_qformats.h formats/lq_tokenizer.h kernels/lq_kernels.h \
	    $(DESTDIR)$(PREFIX)/include/libquant/
	$(Q)cp $(LIBA) $(DESTDIR)$(PREFIX)/lib/
	$(Q)cp $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|0.1.0|' \
	    -e 's|@LIBS@|$(filter -l% -L% -Wl%,$(LDLIBS)) $(if $(HAVE_OMP),-fopenmp)|' libquant.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/libquant.pc
	@echo "installed into $(DESTDIR)$(PREFIX)"

## format: clang-format every C/CUDA source in place
format:
	$(Q)clang-format -i $$(git ls-files '*.c' '*.h' '*.cu' '*.cuh')

## clean: remove build/, build-san/, build-fuzz/
clean:
	$(Q)rm -rf build build-san build-fuzz

## help: this list. Variables: CC NVCC CUDA=auto|0|1 CUDA_ARCH NO_OMP=1 DEBUG=1 V=1 MOREFLAGS BUILD PREFIX SHARED SUITE FUZZ_SECONDS
help:
	@echo "libquant make targets ('check' here means the sanitizer gate, not zstd's short test):"
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

-include $(wildcard $(OBJ)/*.d)
