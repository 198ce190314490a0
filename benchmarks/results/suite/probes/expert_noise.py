import sys, numpy as np
from resrl.sim.scripted import load_task_config, FrankaTableEnv, run_episode, ScriptedVLA
for task in sys.argv[1].split(','):
    tc=load_task_config(task); env=FrankaTableEnv(tc.sim); vla=ScriptedVLA(tc)
    for ns in [float(x) for x in sys.argv[2].split(',')]:
        res=[run_episode(env,'expert',s,noise_std=ns,vla=vla) for s in range(1000,1020)]
        print(task, 'expert noise', ns, np.mean([r['success'] for r in res]), flush=True)
