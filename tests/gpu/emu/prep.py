# Turns a kernels_*.cu into C++ for the emulated device (run.sh): each
# launch `k<<<grid, block, smem, stream>>>(args)` becomes
# `emu_launch(grid, block, smem, stream, sync, k, args)`, where `sync` says
# the kernel calls __syncthreads (its threads must then run concurrently).
import re, sys
SYNC = {'row_mean_kernel', 'layernorm_kernel', 'softmax_rows_kernel',
        'attn_softmax_kernel', 'reduce_block_kernel', 'argmax_block_kernel'}
src = open(sys.argv[1]).read()
def rep(m):
    name = m.group(1)
    base = name.split('<')[0].strip()
    cfg = ' '.join(m.group(2).split())
    sync = 'true' if base in SYNC else 'false'
    return 'emu_launch(%s, %s, %s, ' % (cfg, sync, name)
out, n = re.subn(r'(\w+(?:\s*<[^;<>(]*>)?)\s*<<<(.*?)>>>\s*\(', rep, src, flags=re.S)
sys.stderr.write('%s: %d launches\n' % (sys.argv[1], n))
open(sys.argv[2], 'w').write(out)
