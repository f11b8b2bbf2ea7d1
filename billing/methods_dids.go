package billing

// declareDIDMethods declares the direct number (DID), DID pool and DIDTables methods.
func (s *Service) declareDIDMethods() {
	s.Methods.Add(
		// Direct numbers
		method("getDisaDIDList", 0, s.getDisaDIDList),
		method("updateDIDState", 1, s.updateDIDState, "did:string!", "parameter:ustring{autorenew,enabled}=autorenew",
			"state:bool!"),
		method("getDIDPool", 1, s.getDIDPool, "country:string", "area:string", "search_pattern:string"),
		method("orderDID", 1, s.orderDID, "pool_id:int!", "did:string!", "arg1:string", "arg2:string", "arg3:string"),
		method("getDIDList", 1, s.getDIDList, "sort_by:ustring{expiration,cost,did}=expiration", "own:bool=true"),
		method("addDID", 22, s.addDID, "did:string!", "owner:string", "comment:string", "cost:money=0",
			"expiration:string", "pool_id:int", "disa:bool"),
		method("updateDID", 22, s.updateDID, "did:string!", "owner:string", "comment:string", "cost:money",
			"expiration:string", "pool_id:int", "disa:bool"),
		method("deleteDID", 22, s.deleteDID, "did:string!"),
		method("getDIDInfo", 22, s.getDIDInfo, "did:string!"),
		method("renewDID", 22, s.renewDID, "did:string!"),
		method("addDIDPool", 33, s.addDIDPool, "country:string!", "area:string!", "cost:money=0", "installcost:money=0",
			"provider:string=local", "user:string", "pass:string", "param1:string", "param2:string", "param3:string",
			"qty:int=100"),
		method("updateDIDPool", 33, s.updateDIDPool, "id:int!", "country:string", "area:string", "cost:money",
			"installcost:money", "provider:string", "user:string", "pass:string", "param1:string", "param2:string",
			"param3:string", "qty:int"),
		method("getDIDPools", 33, s.getDIDPools),
		method("getDIDPoolInfo", 33, s.getDIDPoolInfo, "id:int!"),
		method("deleteDIDPool", 33, s.deleteDIDPool, "id:int!"),
		method("getDIDCount", 50, s.getDIDCount, "did:string!"),
		// DIDTables filters
		method("getDIDActions", 1, s.getDIDActions),
		method("getFilters", 1, s.getFilters, "resolver:string", "sources:bool=false"),
		method("addDIDRule", 1, s.addDIDRule, "did:string!", "source:string", "pattern:string",
			"policy:ustring{ACCEPT,REJECT}=ACCEPT", "sms_action:string", "sms_destination:string", "action:string",
			"server:string", "destination:string", "callerid:string", "timeout:int=30", "condition:string",
			"input:string", "position:ustring{start,end}=start"),
		method("updateDIDRule", 1, s.updateDIDRule, "did:string!", "rule:int!", "pos:int", "source:string",
			"pattern:string", "policy:ustring{ACCEPT,REJECT}", "sms_action:string", "sms_destination:string",
			"action:string", "server:string", "destination:string", "callerid:string", "timeout:int",
			"condition:string", "input:string"),
		method("deleteDIDRule", 1, s.deleteDIDRule, "did:string!", "rule:int!", "pattern:string"),
		method("getDIDRules", 1, s.getDIDRules, "did:string!", "rule:int"),
		method("resolveDIDRule", 50, s.resolveDIDRule, "did:string!", "rule:int=1", "callerid:string",
			"status:string", "input:string"),
	)
}
