"""Operator input logic (resrl.teleop) and the console's status (resrl.console), ROS-free."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from resrl import topics
from resrl.console import ConsoleState, render, waiting_for
from resrl.teleop import (FAILURE, GAMEPAD, RESET, SPACEMOUSE, START, SUCCESS, DeviceTeleop, KeyboardTeleop,
                          TeleopConfig, mapping_from_params)

HOME = np.array([0.5, 0.0, 0.3, np.pi, 0.0, 0.0, 0.0])   # hand pointing down, open
RATE = 15.0


def gamepad(cfg=TeleopConfig()):
    dev = DeviceTeleop("gamepad", GAMEPAD, cfg, RATE)
    dev.update_state(HOME)
    return dev


def joy(axes=None, buttons=None):
    a, b = [0.0] * 8, [0] * 11
    for i, v in (axes or {}).items():
        a[i] = v
    for i in buttons or ():
        b[i] = 1
    return a, b


def test_keys_start_label_and_reset():
    kb = KeyboardTeleop()
    assert kb.press("s").start == "train" and kb.press("e").start == "demo"
    assert kb.press("y").events == [SUCCESS] and kb.press("n").events == [FAILURE]
    assert kb.press("r").events == [RESET]
    assert kb.press("q").quit


def test_deadman_gates_the_takeover_and_velocity_is_scaled_to_the_control_rate():
    dev = gamepad()
    t = 0.0
    axes, buttons = joy({1: 1.0})              # left stick fully up, deadman not held
    dev.on_axes(axes, t)
    dev.on_buttons(buttons, t)
    assert not dev.tick(t).active
    axes, buttons = joy({1: 1.0}, [GAMEPAD.deadman_button])
    dev.on_axes(axes, t)
    dev.on_buttons(buttons, t)
    start = dev.tick(t)
    assert start.active and start.changed
    np.testing.assert_allclose(start.action, HOME, atol=1e-6)    # takeover starts where the arm is
    step = dev.tick(t + 1 / RATE)
    # full deflection = max_linear_speed; one control period = 1 / control_rate_hz of it, along base +x
    np.testing.assert_allclose(step.action[:3] - HOME[:3], [0.10 / RATE, 0.0, 0.0], atol=1e-6)
    dev.on_buttons(joy({1: 1.0})[1], t + 0.1)                    # deadman released
    end = dev.tick(t + 0.2)
    assert not end.active and end.changed and end.action.size == 0


def test_target_never_leads_the_arm_by_more_than_max_lead():
    dev = gamepad(TeleopConfig(max_lead_m=0.03))
    axes, buttons = joy({0: 1.0}, [GAMEPAD.deadman_button])    # left stick left: base +y
    for k in range(100):
        dev.on_axes(axes, k / RATE)
        dev.on_buttons(buttons, k / RATE)
        out = dev.tick(k / RATE)
    # the arm did not move (HOME): the target stops 3 cm ahead of it instead of running away
    np.testing.assert_allclose(out.action[:3], HOME[:3] + [0.0, 0.03, 0.0], atol=1e-6)


def test_silent_device_ends_the_takeover():
    dev = gamepad()
    axes, buttons = joy(buttons=[GAMEPAD.deadman_button])
    dev.on_axes(axes, 0.0)
    dev.on_buttons(buttons, 0.0)
    assert dev.tick(0.0).active
    out = dev.tick(1.0)                                          # no message for 1 s > input_timeout_s
    assert not out.active and out.changed and "silent" in out.message


def test_gamepad_gripper_buttons_and_deadzone():
    dev = gamepad()
    held = GAMEPAD.deadman_button
    for t, buttons in ((0.0, [held]), (0.1, [held, GAMEPAD.gripper_close_button]), (0.2, [held])):
        axes, b = joy({1: 0.03}, buttons)                         # inside the deadzone: no motion
        dev.on_axes(axes, t)
        dev.on_buttons(b, t)
        out = dev.tick(t)
    assert out.action[6] == 1.0
    np.testing.assert_allclose(out.action[:3], HOME[:3], atol=1e-9)
    axes, b = joy(buttons=[held, GAMEPAD.gripper_open_button])
    dev.on_axes(axes, 0.3)
    dev.on_buttons(b, 0.3)
    assert dev.tick(0.3).action[6] == 0.0


def test_spacemouse_rotation_about_base_z_and_gripper_toggle():
    dev = DeviceTeleop("spacemouse", SPACEMOUSE, TeleopConfig(), RATE)
    dev.update_state(HOME)
    twist = [0.0, 0.0, 0.0, 0.0, 0.0, SPACEMOUSE.full_scale]   # full yaw rate
    dev.on_axes(twist, 0.0)
    dev.on_buttons([0, 1], 0.0)                                  # right button: deadman
    assert dev.tick(0.0).active
    out = dev.tick(0.0)
    expected = Rotation.from_rotvec([0, 0, 0.6 / RATE]) * Rotation.from_rotvec(HOME[3:6])
    assert (Rotation.from_rotvec(out.action[3:6]) * expected.inv()).magnitude() < 1e-5
    dev.on_buttons([1, 1], 0.05)                                 # left button: toggle gripper
    assert dev.tick(0.05).action[6] == 1.0
    dev.on_buttons([0, 1], 0.1)
    dev.on_buttons([1, 1], 0.15)
    assert dev.tick(0.15).action[6] == 0.0


def test_operator_yaw_rotates_the_device_frame():
    dev = DeviceTeleop("gamepad", GAMEPAD, TeleopConfig(operator_yaw_deg=90.0), RATE)
    dev.update_state(HOME)
    axes, buttons = joy({1: 1.0}, [GAMEPAD.deadman_button])    # "forward" for an operator looking along +y
    dev.on_axes(axes, 0.0)
    dev.on_buttons(buttons, 0.0)
    dev.tick(0.0)
    out = dev.tick(0.0)
    np.testing.assert_allclose(out.action[:3] - HOME[:3], [0.0, 0.10 / RATE, 0.0], atol=1e-6)


def test_no_takeover_without_robot_state_and_bad_mapping_is_rejected():
    dev = DeviceTeleop("gamepad", GAMEPAD, TeleopConfig(), RATE)
    axes, buttons = joy(buttons=[GAMEPAD.deadman_button])
    dev.on_axes(axes, 0.0)
    dev.on_buttons(buttons, 0.0)
    out = dev.tick(0.0)
    assert not out.active and "no robot state" in out.message
    with pytest.raises(ValueError, match="unknown device mapping field"):
        mapping_from_params(GAMEPAD, {"dead_man": 3})
    assert mapping_from_params(GAMEPAD, {"deadman_button": 5}).deadman_button == 5
    with pytest.raises(ValueError):
        DeviceTeleop("gamepad", GAMEPAD, TeleopConfig(), 0.0)


def test_console_state_counts_labels_and_gates():
    s = ConsoleState(window=3)
    s.on_event(START, 3, 1, "train")
    for step in range(4):
        s.on_command(1, step, intervention=step >= 2, held=False, policy_version=7)
        s.on_gate(1, "vgm", 0.5, 1.0 if step % 2 else 0.0, 0.25, 0.0, False, "")
    s.on_event(SUCCESS, 2, 1, confidence=0.91)          # the classifier ended it
    s.on_event(FAILURE, 0, 1)                           # a late key: the episode already ended
    s.on_event(START, 3, 2, "train")
    s.on_event(FAILURE, 0, 2)
    s.on_event(START, 3, 3, "demo")
    s.on_event(SUCCESS, 0, 3)                           # demos do not count toward the success rate
    s.on_learner({"state": "manual", "updates": 42, "policy_version": 9, "replay_online": 100, "replay_demos": 5})
    assert s.success_rate() == 0.5 and s.labelled == 2
    rows = dict(s.lines())
    assert rows["policy version"] == "9" and "updates=42" in rows["learner"]
    assert "p(success)=0.91" in rows["classifier"]
    assert any("ignored" in line for line in s.log)
    s.on_event(START, 3, 4, "train")
    s.on_gate(4, "vgm", 0.5, 1.0, 0.5, 0.0, False, "")
    assert s.gate_activity() == (0.5, 1.0, 0.5, 0.0)
    from rich.console import Console
    console = Console(record=True, width=120)
    console.print(render(s))
    assert "resrl operator console" in console.export_text()


def test_waiting_for_names_the_missing_publisher():
    lines = waiting_for({"vgm_arbiter", "pose_tracker"}, {topics.VLA_CHUNK: 1, topics.RESIDUAL: 1,
                                                          topics.ROBOT_EE_POSE: 1})
    assert lines == [f"vgm_arbiter waits for {topics.OBJECT_POSES}: no publisher; start pose_tracker",
                     f"pose_tracker waits for {topics.FOUNDATIONPOSE_OUTPUT}: no publisher; start the object "
                     "tracker (Isaac ROS FoundationPose) / sim_robot"]
    assert waiting_for(set(), {}) == []
