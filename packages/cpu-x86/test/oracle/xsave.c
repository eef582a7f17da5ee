// XSAVE-family oracle: loads x87/SSE state from a 512-byte FXSAVE64 image (FXRSTOR64), then saves it
// with XSAVE64, XSAVEOPT64 or XSAVEC64 (EDX:EAX = 3: x87 and SSE only) into a 64-byte aligned area
// pre-filled with 0xA5, and prints the 576 bytes. Input lines: "<xsave|xsaveopt|xsavec> <1024 hex>".
#include <stdio.h>
#include <string.h>

static unsigned char img[512] __attribute__((aligned(64)));
static unsigned char area[576] __attribute__((aligned(64)));

int main(void) {
  char op[16];
  static char hexs[1100];
  while (scanf("%15s %1099s", op, hexs) == 2) {
    for (int k = 0; k < 512; k++) sscanf(hexs + 2 * k, "%2hhx", &img[k]);
    memset(area, 0xa5, sizeof area);
    // XSAVE merges into the header: start from a zero one, as software does.
    memset(area + 512, 0, 64);
    __asm__ volatile("fxrstor64 %0" ::"m"(img));
    if (!strcmp(op, "xsave")) __asm__ volatile("xsave64 %0" : "=m"(area) : "a"(3), "d"(0));
    else if (!strcmp(op, "xsaveopt")) __asm__ volatile("xsaveopt64 %0" : "=m"(area) : "a"(3), "d"(0));
    else __asm__ volatile("xsavec64 %0" : "=m"(area) : "a"(3), "d"(0));
    __asm__ volatile("fninit");
    for (int k = 0; k < 576; k++) printf("%02x", area[k]);
    putchar('\n');
  }
  return 0;
}
