/* Minimal Cortex-M start-up for QEMU's MPS2 boards: vector table, zeroed .bss, semihosting
 * stdio (newlib's librdimon), then main with fixed file names. Faults exit with code 99. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

extern int main(int, char **);
extern void initialise_monitor_handles(void);
extern uint32_t __bss_start__, __bss_end__, __stack_top;

void Reset_Handler(void) {
    memset(&__bss_start__, 0, (size_t)((char *)&__bss_end__ - (char *)&__bss_start__));
#ifndef EDGEQ_NO_SEMIHOSTING
    initialise_monitor_handles();
#endif
    static char *argv[] = {"edgeq", "input.bin", "output.bin", 0};
    exit(main(3, argv));
}

void Fault_Handler(void) { exit(99); }

/* SysTick wraps, for the profile clock of main.c (-DEDGEQ_PROFILE) */
volatile uint32_t edgeq_systick_wraps;
void SysTick_Handler(void) { edgeq_systick_wraps++; }

void _init(void) {}
void _fini(void) {}

__attribute__((section(".isr_vector"), used)) void (*const edgeq_vectors[16])(void) = {
    (void (*)(void))&__stack_top, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, 0, 0, 0, 0, 0, 0, 0, 0, SysTick_Handler};
