package methods

// The centralised references: one learner that holds all the data and
// trains in every round (Spec.Central), run through the same round loop.
func init() {
	Register(Def[NoOptions]{Spec: Spec{
		Name:    "central-seq",
		Summary: "centralised sequential fine-tuning (lower reference): one learner with all the data, task after task",
		Central: true,
	}})
	Register(Def[NoOptions]{Spec: Spec{
		Name:      "central-joint",
		Summary:   "centralised joint training (upper reference): one learner that trains at task t on the data of tasks 0..t",
		Central:   true,
		JointData: true,
	}})
	Register(Def[FOTOptions]{
		Spec: Spec{
			Name:    "central-gpm",
			Summary: "centralised GPM: FOT's projection and subspace extraction with one learner holding all the data",
			Block:   BlockFOT,
			Central: true,
		},
		Defaults:  DefaultFOT(),
		Validate:  FOTOptions.Validate,
		NewClient: newFOTClient,
		NewServer: newFOTServer,
	})
}
