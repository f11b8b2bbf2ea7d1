package billing

// declareTariffMethods declares the routing, tariff, direction, bill type and SIP account
// management methods.
func (s *Service) declareTariffMethods() {
	s.Methods.Add(
		// Routing
		method("getRoutes", 22, s.getRoutes, "update:bool=false", "type:ustring{all,sip,sms,default}=all", "all:bool=false"),
		method("getRouteInfo", 22, s.getRouteInfo, "id:int!"),
		method("addRoute", 22, s.addRoute, "route:string!", "type:ustring{sip,sms}!", "sip_server:string",
			"prefix:string=", "host:string", "user:string", "fromuser:bool=false", "pass:string", "callerid:int=2",
			"balance_handler:string", "balance_username:string", "balance_password:string"),
		method("updateRoute", 22, s.updateRoute, "id:int!", "route:string", "prefix:string", "host:string", "user:string",
			"fromuser:bool", "pass:string", "callerid:int", "sip_server:string", "balance_handler:string",
			"balance_username:string", "balance_password:string"),
		method("updateRouteState", 22, s.updateRouteState, "id:int!", "state:bool!"),
		method("deleteRoute", 22, s.deleteRoute, "id:int!"),
		// Directions and tarification
		method("getDirections", 0, s.getDirections, "distinct:bool=true"),
		method("getCurrentRates", 0, s.getCurrentRates, "currency:string"),
		method("getRatesList", 1, s.getRatesList, "all:bool=false", "is_public:bool=false", "is_option:bool"),
		method("switchRates", 1, s.switchRates, "id:int!", "state:bool", "sip_extension:string"),
		method("getRates", 1, s.getRates, "id:int!"),
		method("getRatesInfo", 22, s.getRatesInfo, "id:int!"),
		method("addRates", 22, s.addRates, "table:string=", "name:string!", "bill_type:string=byminute",
			"is_option:bool=false", "is_public:bool=false", "switch_price:money=0", "multiplier:num=1",
			"did_multiplier:num=1", "description:string="),
		method("updateRates", 22, s.updateRates, "id:int!", "name:string", "bill_type:string", "is_option:bool",
			"is_public:bool", "switch_price:money", "multiplier:num", "did_multiplier:num", "description:string"),
		method("deleteRates", 22, s.deleteRates, "id:int!"),
		method("addDirection", 22, s.addDirection, "rates:int!", "direction:int!", "cost:money!", "route:int!", "priority:int=1"),
		method("updateDirection", 22, s.updateDirection, "rates:int!", "direction:int!", "prior:int=1", "cost:money",
			"route:int", "priority:int"),
		method("updateDirections", 22, s.updateDirections, "rates:int!", "directions:string!"),
		method("deleteDirection", 22, s.deleteDirection, "rates:int!", "direction:int!", "prior:int=1"),
		method("updateMarkup", 22, s.updateMarkup, "rates:int!", "markup:num!"),
		method("copyDirections", 22, s.copyDirections, "rates:int!"),
		method("getBillTypes", 22, s.getBillTypes),
		method("getBillType", 33, s.getBillType, "bill_type:string!"),
		method("addBillType", 33, s.addBillType, "bill_type:string!", "free_threshold:int=0", "step:int!"),
		method("updateBillType", 33, s.updateBillType, "bill_type:string!", "free_threshold:int", "step:int"),
		method("deleteBillType", 33, s.deleteBillType, "bill_type:string!"),
		// SIP accounts
		method("getExtensions", 1, s.getExtensions, "own:bool=true", "all:bool=false", "owner:string"),
		method("getExtensionInfo", 1, s.getExtensionInfo, "sip_extension:string", "property:string"),
		method("getAvailExtension", 1, s.getAvailExtension, "own:bool=false"),
		method("createExtension", 1, s.createExtensionMethod, "owner:string", "sip_extension:string",
			"sip_password:string", "sip_server:string", "sip_callerid:string", "sip_language:string",
			"sip_srtp:bool=false"),
		method("updateExtension", 1, s.updateExtension, "sip_extension:string", "extension:string",
			"sip_password:string", "sip_server:string", "sip_srtp:int", "sip_transport:string", "sip_callerid:string",
			"sip_max_call_len:int", "sip_reach:int", "sip_redirect:string", "sip_force_callback:int",
			"sip_language:string", "sip_rates_id:int", "disa_pin:string", "disa_trusted_cli:string",
			"sip_pitch_shift:int", "sip_host:string", "sip_options:string"),
		method("deleteExtension", 1, s.deleteExtension, "sip_extension:string!"),
	)
}
