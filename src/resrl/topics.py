"""Default topic and service names. Every node remaps them; real-driver names are the defaults
where a real driver publishes the data (franka_ros2, realsense2_camera)."""

# Robot (franka_ros2 names; the sim robot publishes the same).
JOINT_STATES = "/joint_states"                                        # sensor_msgs/JointState
EE_POSE = "/franka_robot_state_broadcaster/current_pose"              # geometry_msgs/PoseStamped
GRIPPER_STATE = "/franka_gripper/joint_states"                        # sensor_msgs/JointState (finger joints, m)
TARGET_POSE = "/resrl/target_pose"                                    # geometry_msgs/PoseStamped -> Cartesian controller
GRIPPER_COMMAND = "/resrl/gripper_command"                            # sensor_msgs/JointState: position[0] in [0,1], 1=closed

# Camera (realsense2_camera with camera_namespace:=camera camera_name:=camera).
COLOR_IMAGE = "/camera/camera/color/image_raw"                        # sensor_msgs/Image rgb8
COLOR_INFO = "/camera/camera/color/camera_info"                       # sensor_msgs/CameraInfo
DEPTH_IMAGE = "/camera/camera/aligned_depth_to_color/image_raw"       # sensor_msgs/Image 16UC1 (mm)
DEPTH_INFO = "/camera/camera/aligned_depth_to_color/camera_info"      # sensor_msgs/CameraInfo

# resrl's own graph.
OBS_RGB = "/resrl/obs/rgb"                                            # sensor_msgs/Image rgb8 at model resolution
OBS_DEPTH = "/resrl/obs/depth_relative"                               # sensor_msgs/Image mono8 relative depth
OBJECT_POSES = "/resrl/object_poses"                                  # resrl/TrackedObjects (tracker output)
OBJECT_POSES_GT = "/sim/object_poses_gt"                              # resrl/TrackedObjects (sim ground truth, privileged)
TASK_INFO = "/sim/task_info"                                          # std_msgs/String JSON (sim privileged: target pose, task)
VLA_CHUNK = "/resrl/vla/chunk"                                        # resrl/ActionChunk
RESIDUAL = "/resrl/residual"                                          # resrl/ResidualAction
COMMAND = "/resrl/command"                                            # resrl/CommandedAction
GATE_STATE = "/resrl/gate_state"                                      # resrl/GateState
EPISODE_EVENTS = "/resrl/episode_events"                              # resrl/EpisodeEvent
INTERVENTION = "/resrl/intervention"                                  # resrl/Intervention
RESIDUAL_WEIGHTS = "/resrl/weights/residual"                          # resrl/PolicyWeights (latched)
CRITIC_WEIGHTS = "/resrl/weights/critic"                              # resrl/PolicyWeights (latched)
LEARNER_STATUS = "/resrl/learner/status"                              # std_msgs/String JSON, 1 Hz (operator console)
CLASSIFIER_CONFIDENCE = "/resrl/reward_classifier/confidence"         # std_msgs/Float32: P(success) per step
MARKERS = "/resrl/markers"                                            # visualization_msgs/MarkerArray
CLOCK = "/clock"                                                      # rosgraph_msgs/Clock

# Real robots: the bridge node (resrl.nodes.robot_bridge_node) publishes one state snapshot per
# control period here; the franka_vgm / ur_vgm graphs remap EE_POSE and GRIPPER_STATE to these.
ROBOT_EE_POSE = "/resrl/robot/ee_pose"                                # geometry_msgs/PoseStamped
ROBOT_GRIPPER_STATE = "/resrl/robot/gripper_state"                    # sensor_msgs/JointState (finger joints, m)
ROBOT_STATUS = "/resrl/robot/status"                                  # std_msgs/String JSON: ok / holding + why
BAG_STATUS = "/resrl/bag/status"                                      # std_msgs/String JSON, latched: matched writers per topic

# Services.
RESET_EPISODE = "/resrl/reset_episode"                                # resrl/srv/ResetEpisode
SET_ARBITER_MODE = "/resrl/set_arbiter_mode"                          # resrl/srv/SetArbiterMode
SAVE_CHECKPOINT = "/resrl/save_checkpoint"                            # resrl/srv/SaveCheckpoint
LOAD_CHECKPOINT = "/resrl/load_checkpoint"                            # resrl/srv/LoadCheckpoint

# External perception (Isaac ROS FoundationPose: tracking/output; pose_estimation/output for one-shot estimates).
FOUNDATIONPOSE_OUTPUT = "/tracking/output"                           # vision_msgs/Detection3DArray
