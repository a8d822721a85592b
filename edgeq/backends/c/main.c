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
    for (;;) {
        int i;
        for (i = 0; i < EDGEQ_NUM_INPUTS; i++) {
            size_t n = (size_t)edgeq_input_bytes[i];
            if (fread(edgeq_input(i), 1, n, fi) != n) break;
        }
        if (i < EDGEQ_NUM_INPUTS) break;
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
    printf("edgeq: %ld sample(s)\n", samples);
    return samples > 0 ? 0 : 3;
}
