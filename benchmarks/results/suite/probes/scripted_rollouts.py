import sys, numpy as np
from resrl.sim.scripted import load_task_config, FrankaTableEnv, run_episode, ScriptedVLA
task=sys.argv[1]; over=eval(sys.argv[2]) if len(sys.argv)>2 else {}
modes=sys.argv[3].split(',') if len(sys.argv)>3 else ['vla','expert']
tc=load_task_config(task, overrides=over)
env=FrankaTableEnv(tc.sim); vla=ScriptedVLA(tc)
for mode in modes:
    res=[run_episode(env, mode, s, vla=vla) for s in range(1000,1030)]
    gaps=[]
    print(task, over, mode, np.mean([r['success'] for r in res]), {f: sum(r['failure']==f for r in res) for f in set(r['failure'] for r in res)})
