/* edgeq runner: reads samples from an input file (each sample: every input's int8 bytes in
 * order), runs the model on each, appends every output's bytes (int8, or int16 in native byte
 * order: EDGEQ_OUTPUTi_TYPE) to the output file.
 * Host: main.exe input.bin output.bin [repeats]; on a board under QEMU the file names come from
 * the startup code and the files are reached through semihosting. */
#include <stdio.h>
#include <stdlib.h>
#include "model.h"

#ifdef EDGEQ_HOST_TIMING
#include <time.h>
static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}
#endif

#ifdef EDGEQ_PROFILE
/* The profile clock (edgeq_rt.h): runs EDGEQ_PROFILE_RUNS inferences on the last sample after
 * EDGEQ_PROFILE_WARMUP untimed ones and prints, per run, "edgeq_profile_run R TOTAL" and one
 * "edgeq_profile R LAYER COUNT" line per layer (counts of edgeq_profile_now()). */
#include <stdint.h>
#include <string.h>
#ifndef EDGEQ_PROFILE_RUNS
#define EDGEQ_PROFILE_RUNS 1
#endif
#ifndef EDGEQ_PROFILE_WARMUP
#define EDGEQ_PROFILE_WARMUP 0
#endif
#ifdef __arm__
/* SysTick at the processor clock, 24 bits, its wraps counted by SysTick_Handler (startup_cm.c) */
extern volatile uint32_t edgeq_systick_wraps;
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
static void profile_start(void) {
    SYST_CSR = 0;
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    edgeq_systick_wraps = 0;
    SYST_CSR = 7u; /* enable, interrupt on wrap, processor clock */
}
uint64_t edgeq_profile_now(void) {
    uint32_t hi, lo;
    do {
        hi = edgeq_systick_wraps;
        lo = SYST_CVR;
    } while (hi != edgeq_systick_wraps);
    return ((uint64_t)hi << 24) + (0xFFFFFFu - lo);
}
#else
#include <time.h>
static void profile_start(void) {}
uint64_t edgeq_profile_now(void) { /* this thread's CPU time, ns */
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}
#endif
#ifdef EDGEQ_PROFILE_UART
/* The profile lines go out on the board's UART0 instead of semihosting stdout (the serial
 * line protocol of docs/report.md, "profile"): the CMSDK APB UART of Arm's MPS2 boards. */
#include <stdarg.h>
#define UART0_DATA (*(volatile uint32_t *)0x40004000u)
#define UART0_STATE (*(volatile uint32_t *)0x40004004u)
#define UART0_CTRL (*(volatile uint32_t *)0x40004008u)
#define UART0_BAUDDIV (*(volatile uint32_t *)0x40004010u)
static void prof_printf(const char *fmt, ...) {
    char line[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (const char *c = line; *c; c++) {
        while (UART0_STATE & 1u) {
        }
        UART0_DATA = (uint32_t)(unsigned char)*c;
    }
}
#else
#define prof_printf printf
#endif
/* The inputs may live in the arena, where later layers overwrite them: every run starts from
 * the sample's bytes again, so each run computes (and counts) the same inference. */
static void load_sample(const int8_t *src) {
    for (int i = 0; i < EDGEQ_NUM_INPUTS; i++) {
        memcpy(edgeq_input(i), src, (size_t)edgeq_input_bytes[i]);
        src += edgeq_input_bytes[i];
    }
}
static void profile(const int8_t *sample) {
#ifdef EDGEQ_PROFILE_UART
    UART0_BAUDDIV = 16u;
    UART0_CTRL = 1u; /* transmit */
#endif
    prof_printf("edgeq_profile_begin %d %d\n", EDGEQ_NUM_LAYERS, EDGEQ_PROFILE_RUNS);
    for (long r = -EDGEQ_PROFILE_WARMUP; r < EDGEQ_PROFILE_RUNS; r++) {
        for (int k = 0; k < EDGEQ_NUM_LAYERS; k++) edgeq_profile_counts[k] = 0;
        load_sample(sample);
        /* restarted per run: every run sees the clock (and SysTick's wrap interrupts) in the
         * same phase, so instruction counts repeat exactly whatever was printed before */
        profile_start();
        edgeq_run();
        if (r < 0) continue;
        prof_printf("edgeq_profile_run %ld %llu\n", r,
                    (unsigned long long)edgeq_profile_total);
        for (int k = 0; k < EDGEQ_NUM_LAYERS; k++)
            prof_printf("edgeq_profile %ld %d %llu\n", r, k,
                        (unsigned long long)edgeq_profile_counts[k]);
    }
    prof_printf("edgeq_profile_end\n");
}
#endif

#if defined(EDGEQ_PROFILE) && defined(EDGEQ_SAMPLE)
/* Device profiling firmware: the sample is compiled in (sample.h: every input's int8 bytes in
 * order), no file I/O; the profile goes out on the UART (EDGEQ_PROFILE_UART), then it idles. */
#include "sample.h"
int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    profile(edgeq_sample);
    for (;;) {
    }
}
#else
int main(int argc, char **argv) {
    const char *in = argc > 1 ? argv[1] : "input.bin";
    const char *out = argc > 2 ? argv[2] : "output.bin";
    FILE *fi = fopen(in, "rb");
    if (!fi) {
        fprintf(stderr, "edgeq: cannot open %s\n", in);
        return 2;
    }
    FILE *fo = fopen(out, "wb");
    if (!fo) {
        fprintf(stderr, "edgeq: cannot create %s\n", out);
        return 2;
    }
    long samples = 0;
#ifdef EDGEQ_PROFILE
    size_t sample_bytes = 0;
    for (int i = 0; i < EDGEQ_NUM_INPUTS; i++) sample_bytes += (size_t)edgeq_input_bytes[i];
    int8_t *saved = malloc(sample_bytes);
    if (!saved) return 2;
#endif
    for (;;) {
        int i;
        for (i = 0; i < EDGEQ_NUM_INPUTS; i++) {
            size_t n = (size_t)edgeq_input_bytes[i];
            if (fread(edgeq_input(i), 1, n, fi) != n) break;
        }
        if (i < EDGEQ_NUM_INPUTS) break;
#ifdef EDGEQ_PROFILE
        for (int k = 0, at = 0; k < EDGEQ_NUM_INPUTS; at += edgeq_input_bytes[k], k++)
            memcpy(saved + at, edgeq_input(k), (size_t)edgeq_input_bytes[k]);
#endif
        edgeq_run();
        for (i = 0; i < EDGEQ_NUM_OUTPUTS; i++) {
            size_t n = (size_t)edgeq_output_bytes[i];
            if (fwrite(edgeq_output(i), 1, n, fo) != n) {
                fprintf(stderr, "edgeq: cannot write %s\n", out);
                return 2;
            }
        }
        samples++;
    }
    fclose(fi);
    fclose(fo);
#ifdef EDGEQ_HOST_TIMING
    if (argc > 3 && samples > 0) {
        long repeats = atol(argv[3]);
        double best = 0, spent = 0;
        /* best of `repeats` runs, stopping after 2 s once 3 runs are done */
        for (long r = 0; r < repeats && (r < 3 || spent < 2e9); r++) {
            double t0 = now_ns();
            edgeq_run();
            double t = now_ns() - t0;
            spent += t;
            if (r == 0 || t < best) best = t;
        }
        printf("edgeq_run_ns %.0f\n", best);
    }
#endif
#ifdef EDGEQ_PROFILE
    if (samples > 0) profile(saved); /* the last sample */
    free(saved);
#endif
    printf("edgeq: %ld sample(s)\n", samples);
    return samples > 0 ? 0 : 3;
}
#endif
